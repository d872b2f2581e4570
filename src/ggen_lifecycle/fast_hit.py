"""``ggen lifecycle run PHASE`` answered from the cache without loading make.toml.

``ggen`` offers ``lifecycle [-C DIR] run PHASE [--json] [-q]`` to :func:`answer` before anything
else is imported. It answers only when it can prove the full run would be a cache hit of every
task: the manifest the last such run left (:mod:`._hit_manifest`) matches make.toml, the
environment and this tool; under the project's run lock, with nothing for a killed run to clean
up, each task's key is computed from its input files exactly as the runner computes it (the
same globs, the same content-hash memo) and the local cache holds a verified entry for it.
Then it does what the runner does for such a run: restores the outputs, replays the logs,
records the run and its tasks in ``state.json``, and prints the same report. In every other
case, or when anything goes wrong before the first output is restored, it returns ``None`` and
the full command runs, with nothing changed.

Only the standard library's compiled modules and the lifecycle's small storage modules are
loaded here: no :mod:`pathlib`, :mod:`json` or :mod:`re` (a test holds it to that).
``GGEN_LIFECYCLE_FAST=0`` turns the fast path off.
"""

from __future__ import annotations

import os
import sys
import time

from . import _hit_manifest

TYPE_CHECKING = False  # typing itself is not imported: this module runs before everything else
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, BinaryIO

    from .cache.local import LocalCache
    from .cache.protocol import Entry
    from .files import HashMemo
    from .reporter import Reporter

_FLAGS = {"--json": "as_json", "-q": "quiet", "--quiet": "quiet"}


class Request:
    """The command line :func:`answer` understands."""

    def __init__(self, phase: str, project_dir: str | None, as_json: bool, quiet: bool) -> None:
        self.phase = phase
        self.project_dir = project_dir
        self.as_json = as_json
        self.quiet = quiet


def parse(argv: Sequence[str]) -> Request | None:
    """``[-C DIR] run PHASE [--json] [-q]`` (the arguments after ``lifecycle``), else ``None``."""
    args = list(argv)
    project_dir: str | None = None
    while args and (args[0] in ("-C", "--project") or args[0].startswith("--project=")):
        head = args.pop(0)
        if "=" in head:
            project_dir = head.split("=", 1)[1]
        elif args:
            project_dir = args.pop(0)
        else:
            return None
    if not args or args[0] != "run":
        return None
    flags = {"as_json": False, "quiet": False}
    phases = []
    for item in args[1:]:
        if item in _FLAGS:
            flags[_FLAGS[item]] = True
        elif item.startswith("-") or not item:
            return None
        else:
            phases.append(item)
    if len(phases) != 1 or project_dir == "":
        return None
    return Request(phases[0], project_dir, flags["as_json"], flags["quiet"])


def find_root(project_dir: str | None) -> str | None:
    """The directory of the nearest ``make.toml`` at or above ``project_dir`` (default: the
    current directory), as the full command finds it; ``None`` when it would not find one."""
    start = os.path.realpath(project_dir if project_dir is not None else os.getcwd())
    if not os.path.isdir(start):
        return None  # a make.toml named directly, or nothing there: the full command's case
    directory = start
    while not os.path.isfile(os.path.join(directory, "make.toml")):
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent
    return directory


def answer(argv: Sequence[str]) -> int | None:
    """The exit code of ``ggen lifecycle ARGV`` when it was answered here, else ``None``."""
    if os.environ.get("GGEN_LIFECYCLE_FAST") == "0":
        return None
    request = parse(argv)
    if request is None:
        return None
    root = find_root(request.project_dir)
    if root is None:
        return None
    state_dir = os.path.join(root, ".ggen")
    manifest = _hit_manifest.read(_hit_manifest.manifest_path(state_dir, request.phase))
    try:
        if manifest is None or not _configuration_matches(manifest, root):
            return None
    except Exception:  # a manifest this tool did not write (edited by hand): not proof
        return None
    stream = sys.stderr if request.as_json else sys.stdout
    if stream.isatty() and os.environ.get("TERM") != "dumb":
        return None  # the live display: the full command's
    return _Replay(request, root, manifest, stream.buffer).run()


def _configuration_matches(manifest: dict[str, Any], root: str) -> bool:
    """Whether make.toml, the workspace directories, the environment and the tool are those the
    manifest was written with."""
    if manifest.get("root") != root or manifest.get("env") != _hit_manifest.env_digest(os.environ):
        return False
    config = manifest.get("config")
    if not isinstance(config, dict) or os.path.join(root, "make.toml") not in config:
        return False
    for path, digest in config.items():
        if path.endswith("/"):
            if not os.path.isdir(path):
                return False
        elif _hit_manifest.file_digest(path) != digest:
            return False
    return manifest.get("tool") == _hit_manifest.tool_digest()


class _Task:
    """One task of the manifest: what the reporter and the summary need of a node and a result."""

    kind = "task"
    status = "cached"
    cache = "hit"
    error = None
    error_obj = None
    log = None
    exit_code = None

    def __init__(self, record: dict[str, Any]) -> None:
        self.id = str(record["id"])
        self.label = str(record["label"])
        self.phase = str(record["phase"])
        workspace = record["workspace"]
        self.workspace = None if workspace is None else str(workspace)
        self.cwd = str(record["cwd"])
        self.key_cwd = str(record["key_cwd"])
        self.commands = [str(c) for c in record["commands"]]
        self.env = {str(k): str(v) for k, v in dict(record["env"]).items()}
        self.inputs = [str(p) for p in record["inputs"]]
        self.outputs = [str(p) for p in record["outputs"]]
        self.deps = [str(d) for d in record["deps"]]
        self.tail: list[str] = []
        self.cache_key = ""
        self.entry: Entry | None = None
        self.started_at = 0.0
        self.ended_at = 0.0

    @property
    def duration(self) -> float:
        return self.ended_at - self.started_at


class _Replay:
    """One answered run: proved under the run lock, then restored, replayed and recorded; its
    attributes are those of a :class:`~ggen_lifecycle.results.RunSummary`."""

    status = "success"
    exit_code = 0
    environment = None
    validation_gate = None
    task_cleanup = None

    def __init__(
        self, request: Request, root: str, manifest: dict[str, Any], stream: BinaryIO
    ) -> None:
        self.request = request
        self.root = root
        self.manifest = manifest
        self.stream = stream
        self.started_at = time.time()
        self.ended_at = 0.0
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + os.urandom(3).hex()
        self.project = str(manifest["project"])
        self.phases = [request.phase]
        self.results: list[_Task] = []
        self.warnings: list[str] = []

    def run(self) -> int | None:
        from .errors import StateLockError
        from .state import RunLock

        self.state_dir = os.path.join(self.root, ".ggen")
        lock = RunLock(self.state_dir, ["run", self.request.phase])
        try:
            lock.acquire(0.0)
        except (StateLockError, OSError):
            return None  # the full command reports it
        try:
            proved = self._prove()
        except Exception:  # anything unforeseen: the full command decides
            proved = False
        if not proved:
            lock.release()
            return None
        try:
            self._record_and_report(lock)
        finally:
            lock.release()  # (again: releasing twice is harmless)
        return 0

    # -- the tasks: each proved a hit, then restored ---------------------------------------------

    def _prove(self) -> bool:
        """Whether every task is a verified local cache hit, restoring each one's outputs before
        the next task's key is computed (its inputs may be them), as the runner does.

        False as soon as one is not: outputs restored so far are what the full command restores
        first too (their keys do not change), and nothing else has changed.
        """
        from . import files, recovery
        from .cache.key import compute_key
        from .cache.local import LocalCache

        state_dir = self.state_dir
        if recovery.pending(state_dir) or not os.path.exists(os.path.join(state_dir, ".gitignore")):
            return False
        self.memo: HashMemo = files.HashMemo(os.path.join(state_dir, "hashes.json"))
        cache = LocalCache(os.path.join(state_dir, "cache"), int(self.manifest["max_bytes"]))
        keys: dict[str, str] = {}
        for record in self.manifest["tasks"]:
            task = _Task(record)
            task.started_at = time.time()
            inputs, _ = files.expand(task.cwd, task.inputs)
            hashes = files.hash_files(task.cwd, inputs, self.memo)
            deps = [keys[d] for d in task.deps]
            task.cache_key = compute_key(task.commands, task.env, task.key_cwd, hashes, deps)
            task.entry = cache.peek(task.cache_key)
            if task.entry is None or not self._restore(cache, task, task.entry):
                return False
            task.ended_at = time.time()
            keys[task.id] = task.cache_key
            self.results.append(task)
        return True

    def _restore(self, cache: LocalCache, task: _Task, entry: Entry) -> bool:
        """Put ``task``'s outputs in place, all or nothing, as the runner does."""
        cache.touch(entry)
        try:
            cache.restore(entry, task.cwd, root=self.root, declared=task.outputs)
        except Exception:  # refused, corrupted, a full disk: the full command says which
            return False
        return True

    # -- what the runner records and prints ------------------------------------------------------

    def _record_and_report(self, lock: Any) -> None:
        from . import files
        from .reporter import Reporter, emit, print_summary, summary_dict
        from .state import StateStore

        reporter = Reporter(self.stream, quiet=self.request.quiet)
        self.reporter: Reporter = reporter
        state = StateStore(os.path.join(self.state_dir, "state.json"), warn=self._warn)
        self.ended_at = time.time()
        # One update for what the runner writes in three (the run "running", its tasks, the run's
        # outcome): the same records, and a run over in milliseconds needs no "running" one.
        try:
            state.append([self._run_record("success", len(self.results))], self._task_records())
        except Exception as exc:
            self._warn(f"could not record the run in state.json: {exc}")
        for task in self.results:
            reporter.task_started(task)  # type: ignore[arg-type]  # a node's label and kind
            assert task.entry is not None
            with open(os.path.join(task.entry.path, "log"), "rb") as log:
                for line in log:
                    reporter.line(task, line)  # type: ignore[arg-type]
            reporter.task_finished(task)  # type: ignore[arg-type]  # a result's fields
        try:  # noqa: SIM105 - contextlib is not loaded on the cache-hit path
            self.memo.save()
        except OSError:
            pass
        lock.release()
        try:  # noqa: SIM105 - contextlib is not loaded on the cache-hit path
            files.prune_logs(os.path.join(self.state_dir, "logs"))
        except OSError:
            pass
        reporter.close()
        if self.request.as_json:
            emit(summary_dict(self))  # type: ignore[arg-type]  # a summary's fields
        else:
            print_summary(self)  # type: ignore[arg-type]  # a summary's fields

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        self.reporter.message(message)

    def _run_record(self, status: str, tasks: int) -> dict[str, Any]:
        """As the runner's ``_run_record``."""
        ended = self.ended_at or time.time()
        return {
            "run_id": self.run_id,
            "phases": [self.request.phase],
            "environment": None,
            "workspace": None,
            "start": self.started_at,
            "duration": round(max(0.0, ended - self.started_at), 6),
            "result": status,
            "tasks": tasks,
        }

    def _task_records(self) -> list[dict[str, Any]]:
        """As the runner's ``_record``."""
        return [
            {
                "run_id": self.run_id,
                "phase": t.phase,
                "workspace": t.workspace,
                "kind": "task",
                "start": t.started_at,
                "duration": round(t.duration, 6),
                "result": t.status,
                "exit_code": None,
                "cache": t.cache,
                "cache_key": t.cache_key,
                "error": None,
            }
            for t in self.results
        ]
