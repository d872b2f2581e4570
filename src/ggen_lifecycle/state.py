"""``.ggen/state.json``: every task ever run here (failed ones too), and the project's run lock.

Each write takes a short file lock, reads the current file, appends, writes a temporary file and
``os.replace``s it into place: parallel tasks and concurrent processes lose nothing, and a reader
never sees half a file. A corrupted file is moved aside, reported, and a fresh one started.
"""

from __future__ import annotations

import fcntl
import os
import time

from pytest_cleanroom.faults import crash_point
from pytest_cleanroom.safe_write import write_output

from . import _jsonc
from .errors import StateLockError

TYPE_CHECKING = False  # typing itself is not imported: the cache-hit fast path loads this module
if TYPE_CHECKING:
    import queue
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path
    from typing import Any

STATE_FORMAT = 1
MAX_RECORDS = 2000  # oldest task and run records are dropped beyond this
LOCK_TIMEOUT = 30.0
LOCK_POLL = 0.02


class LockTimeout(Exception):  # noqa: N818 - named like the condition it reports
    """The lock was still held by someone else when the timeout ran out."""


class FileLock:
    """An exclusive ``flock`` on ``path``, taken through a descriptor of its own per acquisition,
    so that it excludes other threads of this process as well as other processes. The kernel
    releases it if the holder dies."""

    def __init__(self, path: Path | str) -> None:
        self.path = path

    def acquire(self, timeout: float) -> int:
        """The locked descriptor (close it to release); :class:`LockTimeout` after ``timeout``."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockTimeout(str(self.path)) from None
                time.sleep(LOCK_POLL)
            except BaseException:
                os.close(fd)
                raise

    def held(self, timeout: float) -> _Held:
        """A context manager holding the lock (:meth:`acquire`'s ``timeout``)."""
        return _Held(self, timeout)


class _Held:
    """:meth:`FileLock.held`'s context manager (a class: :mod:`contextlib` is not loaded)."""

    def __init__(self, lock: FileLock, timeout: float) -> None:
        self.lock = lock
        self.timeout = timeout
        self.fd = -1

    def __enter__(self) -> int:
        self.fd = self.lock.acquire(self.timeout)
        return self.fd

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def atomic_write(path: Path | str, text: str, *, durable: bool = False) -> None:
    """Write ``text`` to ``path`` (parents created) through
    :func:`~pytest_cleanroom.safe_write.write_output`: readers see the old or the new file,
    never a mix. ``durable`` also fsyncs the data, which only matters if the machine loses
    power."""
    os.makedirs(_parent(path), exist_ok=True)
    write_output(path, text, durable=durable)


def _parent(path: Path | str) -> str:
    """``path``'s directory, as ``Path(path).parent`` names it."""
    return os.path.dirname(os.fspath(path).rstrip("/")) or "."


def dumps(data: Mapping[str, Any]) -> str:
    """``data`` as JSON with one record per line: readable, and written by json's C encoder
    (``indent`` would use the pure-Python one, many times slower on a long history)."""
    fields = []
    for key, value in data.items():
        name = _jsonc.dumps(key)
        if isinstance(value, list):
            items = ",\n".join(_jsonc.dumps(item) for item in value)
            fields.append(f"{name}: [\n{items}\n]" if value else f"{name}: []")
        else:
            fields.append(f"{name}: {_jsonc.dumps(value)}")
    return "{\n" + ",\n".join(fields) + "\n}\n"


class CorruptStateError(ValueError):
    """``state.json`` is not a state file this package could have written."""


MAX_STATE_BYTES = 64 * 1024 * 1024
_TEXT: tuple[type, ...] = (str,)
_MAYBE_TEXT: tuple[type, ...] = (str, type(None))
_NUMBER: tuple[type, ...] = (int, float)
_MAYBE_NUMBER: tuple[type, ...] = (int, float, type(None))
#: The fields of the records the runner writes, and what each may hold (other keys are kept).
RUN_FIELDS: dict[str, tuple[type, ...]] = {
    "run_id": _TEXT,
    "phases": (list,),
    "environment": _MAYBE_TEXT,
    "workspace": _MAYBE_TEXT,
    "start": _NUMBER,
    "duration": _NUMBER,
    "result": _TEXT,
    "tasks": (int,),
}
TASK_FIELDS: dict[str, tuple[type, ...]] = {
    "run_id": _TEXT,
    "phase": _TEXT,
    "workspace": _MAYBE_TEXT,
    "kind": _TEXT,
    "start": _MAYBE_NUMBER,
    "duration": _NUMBER,
    "result": _TEXT,
    "exit_code": (int, type(None)),
    "cache": _MAYBE_TEXT,
    "cache_key": _MAYBE_TEXT,
    "error": _MAYBE_TEXT,
}


def parse_state(raw: bytes) -> dict[str, Any]:
    """The state held in ``raw`` (the bytes of a state.json); :class:`CorruptStateError` for
    anything this package would not have written: not UTF-8, not JSON, nested too deeply, over
    64 MiB, another format, or a record whose fields have the wrong types."""
    if len(raw) > MAX_STATE_BYTES:
        raise CorruptStateError("larger than 64 MiB")
    try:
        data = _jsonc.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CorruptStateError(str(exc) or type(exc).__name__) from None
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise CorruptStateError("not a ggen lifecycle state file of format 1")
    for key, fields in (("runs", RUN_FIELDS), ("tasks", TASK_FIELDS)):
        records = data.get(key)
        if not isinstance(records, list):
            raise CorruptStateError(f"{key!r} must be a list")
        for index, record in enumerate(records):
            problem = _record_problem(record, fields)
            if problem:
                raise CorruptStateError(f"{key}[{index}]: {problem}")
    return data


def _record_problem(record: object, fields: Mapping[str, tuple[type, ...]]) -> str | None:
    if not isinstance(record, dict):
        return f"a record must be an object, not {type(record).__name__}"
    for name, kinds in fields.items():
        if name in record and not isinstance(record[name], kinds):
            return f"{name!r} holds {type(record[name]).__name__}"
    phases = record.get("phases", [])
    if isinstance(phases, list) and not all(isinstance(p, str) for p in phases):
        return "'phases' must list names"
    return None


class StateStore:
    """Reads and appends to ``state.json``; ``warn`` receives corruption reports."""

    def __init__(self, path: Path | str, warn: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.lock = FileLock(f"{os.fspath(path)}.lock")
        self.warn = warn or (lambda message: None)

    def _read_unlocked(self) -> dict[str, Any]:
        empty: dict[str, Any] = {"format": STATE_FORMAT, "runs": [], "tasks": []}
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read(MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            return empty
        except OSError as exc:
            self.warn(f"cannot read {self.path}: {exc}; starting a fresh state")
            return empty
        try:
            return parse_state(raw)
        except CorruptStateError as exc:
            aside = f"state.json.corrupt-{int(time.time())}"
            try:
                os.replace(self.path, os.path.join(_parent(self.path), aside))
                moved = f"moved it to {aside}"
            except OSError as move_error:
                moved = f"could not move it aside ({move_error.strerror})"
            self.warn(f"{self.path} is corrupted ({exc}); {moved} and started afresh")
            return empty

    def read(self) -> dict[str, Any]:
        """The whole state (an empty one if the file is missing or corrupted)."""
        if not os.path.isdir(_parent(self.path)):
            return self._read_unlocked()
        try:
            fd = self.lock.acquire(LOCK_TIMEOUT)
        except OSError:  # a read-only file system: nobody can be writing it either
            return self._read_unlocked()
        try:
            return self._read_unlocked()
        finally:
            os.close(fd)

    def update(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Apply ``change`` to the state under the lock and write it atomically."""
        os.makedirs(_parent(self.path), exist_ok=True)
        with self.lock.held(LOCK_TIMEOUT) as lock_fd:
            data = self._read_unlocked()
            change(data)
            self._write(lock_fd, data)

    def append(self, runs: Sequence[Mapping[str, Any]], tasks: Sequence[Mapping[str, Any]]) -> None:
        """Add run and task records, as an :meth:`update` appending them would.

        When state.json is the file this package last wrote (its size, times and inode are
        those recorded in the lock file after that write), its records are known to be valid
        and laid out one per line: the new ones are added as lines, without parsing and
        checking the whole history again (a full history is thousands of records).
        """
        os.makedirs(_parent(self.path), exist_ok=True)
        with self.lock.held(LOCK_TIMEOUT) as lock_fd:
            text = _spliced(self._own_text(lock_fd), runs, tasks)
            if text is None:
                data = self._read_unlocked()
                data["runs"].extend(dict(r) for r in runs)
                data["tasks"].extend(dict(t) for t in tasks)
                self._write(lock_fd, data)
                return
            crash_point("state: writing", "GGEN_LIFECYCLE")
            atomic_write(self.path, text)
            self._remember(lock_fd)
            crash_point("state: written", "GGEN_LIFECYCLE")

    def _write(self, lock_fd: int, data: dict[str, Any]) -> None:
        del data["tasks"][:-MAX_RECORDS]
        del data["runs"][:-MAX_RECORDS]
        crash_point("state: writing", "GGEN_LIFECYCLE")
        atomic_write(self.path, dumps(data))
        self._remember(lock_fd)
        crash_point("state: written", "GGEN_LIFECYCLE")

    def _remember(self, lock_fd: int) -> None:
        """Record the identity of the state.json just written in the lock file (held)."""
        try:
            mark = _identity(os.stat(self.path)).encode()
            os.pwrite(lock_fd, mark, 0)
            os.ftruncate(lock_fd, len(mark))
        except OSError:
            pass  # the next append reads the whole file, as an update does

    def _own_text(self, lock_fd: int) -> str | None:
        """state.json's text if it is the file this package last wrote, else ``None``."""
        try:
            with open(self.path, "rb") as handle:
                if os.pread(lock_fd, 200, 0).decode() != _identity(os.fstat(handle.fileno())):
                    return None
                raw = handle.read(MAX_STATE_BYTES + 1)
            return raw.decode("utf-8") if len(raw) <= MAX_STATE_BYTES else None
        except (OSError, UnicodeDecodeError):
            return None

    def record_task(self, record: Mapping[str, Any]) -> None:
        self.append((), [record])

    def record_run(self, record: Mapping[str, Any]) -> None:
        def change(data: dict[str, Any]) -> None:
            runs = data["runs"]
            for index, existing in enumerate(runs):
                if existing.get("run_id") == record.get("run_id"):
                    runs[index] = dict(record)
                    return
            runs.append(dict(record))

        self.update(change)


def _identity(info: os.stat_result) -> str:
    """What identifies one written version of a file: size, times (ctime cannot be set back by
    programs) and inode, as the input-hash memo identifies files."""
    return f"{info.st_size} {info.st_mtime_ns} {info.st_ctime_ns} {info.st_ino}"


_HEAD = '{\n"format": 1,\n"runs": '
_TASKS = ',\n"tasks": '


def _spliced(
    text: str | None, runs: Sequence[Mapping[str, Any]], tasks: Sequence[Mapping[str, Any]]
) -> str | None:
    """``text`` (a state.json :func:`dumps` wrote) with the records added as lines and the
    oldest beyond :data:`MAX_RECORDS` dropped; ``None`` when it is laid out otherwise.

    A record is one line (JSON escapes every newline in a string), so ``",\\n"`` separates
    records and nothing else."""
    if text is None or not text.startswith(_HEAD) or not text.endswith("\n}\n"):
        return None
    old_runs, found, old_tasks = text[len(_HEAD) : -3].partition(_TASKS)
    run_lines, task_lines = _record_lines(old_runs), _record_lines(old_tasks)
    if not found or run_lines is None or task_lines is None:
        return None
    run_lines = (run_lines + [_jsonc.dumps(dict(r)) for r in runs])[-MAX_RECORDS:]
    task_lines = (task_lines + [_jsonc.dumps(dict(t)) for t in tasks])[-MAX_RECORDS:]
    return f"{_HEAD}{_list_text(run_lines)}{_TASKS}{_list_text(task_lines)}\n}}\n"


def _record_lines(block: str) -> list[str] | None:
    if block == "[]":
        return []
    if not block.startswith("[\n") or not block.endswith("\n]"):
        return None
    return block[2:-2].split(",\n")


def _list_text(lines: list[str]) -> str:
    return "[\n" + ",\n".join(lines) + "\n]" if lines else "[]"


class RunLock:
    """One ``ggen lifecycle`` run per project at a time: ``.ggen/run.lock``.

    The holder writes who it is to ``.ggen/run.lock.json`` so that the refused run can say so.
    """

    def __init__(self, state_dir: Path | str, description: Sequence[str]) -> None:
        self.state_dir = state_dir
        self.lock = FileLock(os.path.join(state_dir, "run.lock"))
        self._fd: int | None = None
        self.info_path = os.path.join(state_dir, "run.lock.json")
        self.description = " ".join(description)

    def acquire(self, wait: float) -> None:
        """Take the lock, waiting up to ``wait`` seconds; :class:`StateLockError` otherwise."""
        os.makedirs(self.state_dir, exist_ok=True)
        try:
            self._fd = self.lock.acquire(max(wait, 0.0))
        except LockTimeout:
            holder = self._holder()
            waited = f"waited {wait:g}s; " if wait > 0 else ""
            raise StateLockError(
                f"another run of this project is in progress ({holder}); {waited}"
                "wait for it to finish, or pass --wait SECONDS to wait for it",
                file=os.path.join(self.state_dir, "run.lock"),
            ) from None
        info = {"pid": os.getpid(), "command": self.description, "started": time.time()}
        try:
            atomic_write(self.info_path, _jsonc.dumps(info))
        except OSError:
            self.release()
            raise

    def _holder(self) -> str:
        try:
            with open(self.info_path, encoding="utf-8") as handle:
                info = _jsonc.loads(handle.read())
            started = time.strftime("%H:%M:%S", time.localtime(float(info["started"])))
            return f"pid {info['pid']}: `{info['command']}` since {started}"
        except (OSError, ValueError, KeyError, TypeError):
            return "holder unknown"

    def release(self) -> None:
        try:  # noqa: SIM105 - contextlib is not loaded on the cache-hit path
            os.unlink(self.info_path)
        except FileNotFoundError:
            pass
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class StateWriter:
    """Appends task records to a :class:`StateStore` from a background thread, in batches.

    Tasks hand their record over and go on at once; the writer merges whatever has queued up into
    one locked, atomic update. :meth:`close` writes what is left before returning.
    """

    def __init__(self, store: StateStore, warn: Callable[[str], None]) -> None:
        self.store = store
        import queue
        import threading

        self.warn = warn
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="ggen-state", daemon=True)
        self._thread.start()

    def add(self, record: Mapping[str, Any]) -> None:
        self._queue.put(dict(record))

    def _loop(self) -> None:
        from queue import Empty

        done = False
        while not done:
            batch: list[dict[str, Any]] = []
            item = self._queue.get()
            while True:
                if item is None:
                    done = True
                else:
                    batch.append(item)
                try:
                    item = self._queue.get_nowait()
                except Empty:
                    break
            if batch:
                try:
                    self.store.append((), batch)
                except Exception as exc:  # state is a record, never a reason to fail a run
                    self.warn(f"could not record {len(batch)} task(s) in state.json: {exc}")

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
