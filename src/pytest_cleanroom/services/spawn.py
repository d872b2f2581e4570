"""Shared mechanics of the process provider: private directories, ports, spawning, waiting."""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from . import procutil
from .errors import ServiceConfigError, ServiceStartError
from .registry import Handle, Owner, Registry, Started, ensure_private_dir

ServerT = TypeVar("ServerT")

MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS


@dataclass(frozen=True)
class Account:
    """The user a server runs as; ``None`` fields mean "the current user"."""

    uid: int | None = None
    gid: int | None = None
    name: str | None = None

    def chown(self, path: Path, group: int | None = None) -> None:
        if self.uid is None:
            return
        gid = group if group is not None else self.gid
        os.chown(path, self.uid, -1 if gid is None else gid)


def postgres_account() -> Account:
    """PostgreSQL refuses to run as root: as root, run it as ``postgres`` (or ``nobody``)."""
    return unprivileged_account("PostgreSQL", ("postgres", "nobody"))


def unprivileged_account(server: str, names: Sequence[str]) -> Account:
    """The current user, or as root the first of ``names`` that exists: servers run
    unprivileged (PostgreSQL and MariaDB refuse root anyway)."""
    if os.geteuid() != 0:
        return Account()
    for name in names:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return Account(entry.pw_uid, entry.pw_gid, name)
    raise ServiceStartError(
        f"{server} cannot run as root and none of the users {', '.join(names)} exists: "
        "run the tests as an ordinary user or create one of those users"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def candidate_ports(fixed: int, ini_key: str, attempts: int = 5) -> Iterator[int]:
    """The fixed port (checked now, clear error if taken) or a few free ones to try in turn."""
    if fixed:
        if not port_is_free(fixed):
            raise ServiceStartError(
                f"port {fixed} on 127.0.0.1 (ini {ini_key}) is taken by another program: "
                f"stop that program, choose another port, or set {ini_key} = 0 to pick a free one"
            )
        yield fixed
        return
    for _ in range(attempts):
        yield free_port()


class PortTakenError(Exception):
    """The server could not bind its port: someone took it between our check and its bind."""


SHM = Path("/dev/shm")
SHM_MIN_FREE = 1 << 30  # leave tmpfs alone when it is small (containers default to 64 MB)


def data_root(settings_data_dir: Path | None, runtime_dir: Path) -> Path:
    """Where PostgreSQL data go: the setting, else RAM (/dev/shm) when roomy, else disk."""
    if settings_data_dir is not None:
        return settings_data_dir
    try:
        stats = os.statvfs(SHM)
        if stats.f_bavail * stats.f_frsize >= SHM_MIN_FREE and os.access(SHM, os.W_OK | os.X_OK):
            return SHM / f"pytest-cleanroom-{os.getuid()}"
    except OSError:
        pass
    return runtime_dir


@dataclass
class ServerDir:
    """A server's private directory, registered before creation so a crash leaves no orphan.

    ``data`` is the place for bulky data: inside ``path``, or on another file system (RAM).
    """

    path: Path
    data: Path
    registry: Registry
    record_id: str
    handle: Handle

    @classmethod
    def create(
        cls,
        *,
        service: str,
        runtime_dir: Path,
        run_id: str,
        owner: Owner,
        pidfile: str,
        stop_signal: int,
        data_dir: Path | None = None,
        group: int | None = None,
    ) -> ServerDir:
        """Register, then create, ``<runtime_dir>/<sv>-<run>-<rand>`` (and its data directory).

        ``pidfile`` is relative to the server directory (``data/...``: to the data directory);
        ``data_dir`` is a root for the data directory elsewhere (``None``: ``<server dir>/data``).
        The server directory is ours alone (0700), or 0710 for ``group`` when the server runs
        as another account that must reach its socket directory inside.
        """
        ensure_private_dir(runtime_dir)
        name = f"{service[:2]}-{run_id}-{secrets.token_hex(3)}"
        path = runtime_dir / name
        data = path / "data" if data_dir is None or data_dir == runtime_dir else data_dir / name
        longest = path / "sock" / ".s.PGSQL.65535"
        if len(os.fsencode(longest)) > MAX_SOCKET_PATH:
            raise ServiceConfigError(
                f"services runtime directory {runtime_dir} is too long for unix socket paths "
                f"(limit about {MAX_SOCKET_PATH} bytes): set CLEANROOM_SERVICES_RUNTIME_DIR to a "
                "shorter directory such as /tmp/cleanroom"
            )
        registry = Registry(runtime_dir)
        handle: Handle = {
            "kind": "process",
            "service": service,
            "server_dir": str(path),
            "paths": [str(path)] if data.parent == path else [str(path), str(data)],
            "pid": None,
            "token": None,
            "pidfile": _pidfile_path(pidfile, path, data),
            "stop_signal": stop_signal,
        }
        record_id = registry.add(service=service, run_id=run_id, owner=owner, handle=handle)
        path.mkdir(mode=0o700)
        if group is not None:
            os.chown(path, -1, group)
            path.chmod(0o710)
        if data.parent != path:
            ensure_private_dir(data.parent)
        return cls(path, data, registry, record_id, handle)

    def started(self, pid: int) -> None:
        """Remember the server's pid (and start time) in the registry record."""
        self.handle = {**self.handle, "pid": pid, "token": procutil.start_token(pid)}
        self.registry.update(self.record_id, self.handle)

    def discard(self) -> None:
        """Stop whatever runs and remove the directory and the record (failed start)."""
        from .cleanup import stop_process

        with contextlib.suppress(Exception):
            stop_process(self.handle, timeout=5.0)
        shutil.rmtree(self.path, ignore_errors=True)
        shutil.rmtree(self.data, ignore_errors=True)
        self.registry.remove(self.record_id)

    @contextlib.contextmanager
    def discarded_on_failure(self) -> Iterator[ServerDir]:
        """Discard the directory if the block fails (Ctrl-C included): nothing is left behind."""
        try:
            yield self
        except BaseException:
            self.discard()
            raise

    def started_server(self, server: ServerT) -> Started[ServerT]:
        """``server``, running from this directory, with its registry record."""
        return Started(server, self.handle, self.record_id, self.registry)


def _pidfile_path(pidfile: str, path: Path, data: Path) -> str:
    if not pidfile:
        return ""
    if pidfile.startswith("data/"):
        return str(data / pidfile.removeprefix("data/"))
    return str(path / pidfile)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a server: ours minus client settings that could confuse it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "REDIS"))}
    env.update(extra or {})
    return env


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    account: Account,
    cwd: Path,
    env: Mapping[str, str],
) -> subprocess.Popen[bytes]:
    """Start a server in its own session (so its whole group can be stopped) with a log file."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
            user=account.uid,
            group=account.gid,
            extra_groups=[] if account.uid is not None else None,
        )


def wait_ready(
    proc: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    deadline: float,
    what: str,
    log_path: Path,
    port_taken: Callable[[str], bool],
) -> None:
    """Poll ``ready()`` until it is true; raise if the process exits or the deadline passes."""
    delay = 0.002
    while True:
        if proc.poll() is not None:
            log = tail(log_path)
            if port_taken(log):
                raise PortTakenError(log)
            raise ServiceStartError(f"{what} exited with status {proc.returncode}; its log:\n{log}")
        with contextlib.suppress(Exception):
            if ready():
                return
        if time.monotonic() >= deadline:
            raise ServiceStartError(
                f"{what} did not become ready before the start timeout (raise "
                f"cleanroom_services_start_timeout if the machine is slow); its log:\n"
                f"{tail(log_path)}"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.05)


def start_on_a_free_port(
    sdir: ServerDir,
    ports: Iterable[int],
    launch: Callable[[int], subprocess.Popen[bytes]],
    ready: Callable[[], bool],
    *,
    deadline: float,
    what: str,
    log_path: Path,
    port_taken: Callable[[str], bool],
) -> int:
    """Launch the server on each port in turn until one is ready; returns that port. Nothing
    is launched once ``deadline`` has passed.

    A server that exits because another program took its port in the meantime (``port_taken``
    recognises its log) is tried again on the next port; any other failure is raised.
    """
    last_error = ""
    for port in ports:
        if time.monotonic() >= deadline:
            # Checked before each launch, not only while waiting: a server launched after the
            # deadline could be ready at the first look (a loaded machine pauses this process)
            # and would be accepted, although the start timeout had passed.
            raise ServiceStartError(
                f"{what} was not launched: the start timeout passed while it was being prepared "
                "(raise cleanroom_services_start_timeout if the machine is slow)"
            )
        proc = launch(port)
        sdir.started(proc.pid)
        try:
            wait_ready(
                proc, ready, deadline=deadline, what=what, log_path=log_path, port_taken=port_taken
            )
        except PortTakenError as exc:
            last_error = str(exc)
            continue
        return port
    raise ServiceStartError(
        f"{what} could not bind a free port on 127.0.0.1 after several tries (another program "
        f"keeps taking them); last log:\n{last_error}"
    )


def tail(path: Path, lines: int = 30) -> str:
    try:
        data = path.read_bytes()[-16384:].decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(data.splitlines()[-lines:]) or "(empty log)"
