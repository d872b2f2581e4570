"""The cleanroom engine's public face: :class:`Cleanroom`, :func:`run`, :func:`run_with_policy`.

A :class:`Cleanroom` runs commands in one workspace (mounted at ``/workspace`` inside the sandbox)
under a policy, with a seed, through a backend chosen once (``auto`` picks the best one that can
honour the policy), and remembers every :class:`RunResult`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .backends import fit_policy, select_backend
from .backends.base import (
    WORKSPACE_PATH,
    Backend,
    CommandSpec,
    Mount,
    make_result,
)
from .environment import FIXED_PATH, HOME_DIR, build_environment, new_seed
from .errors import CleanroomError, WorkspaceError
from .interpreter import sandbox_path
from .policy import Policy
from .result import RunResult
from .workspace import Workspace

if TYPE_CHECKING:
    from .scenarios.model import Scenario
    from .scenarios.result import ScenarioResult

Command = str | Sequence[str]
RunListener = Callable[[RunResult], None]
PolicyLike = Policy | str | Mapping[str, Any] | None

#: Exit code of a command that :meth:`Cleanroom.cancel` kept from starting (as if SIGKILLed).
EXIT_CANCELLED = 137
_NOT_STARTED_NOTE = b"cleanroom: command cancelled before it started\n"
#: How often :meth:`Cleanroom.cancel` repeats the kill while a cancelled command has not returned
#: (a command still being set up registers with its backend only when it starts).
_CANCEL_TICK = 0.02


@dataclasses.dataclass(eq=False)
class _InFlight:
    """One command between the start and the end of :meth:`Cleanroom.run`."""

    spec: CommandSpec
    cancelled: bool = False
    done: threading.Event = dataclasses.field(default_factory=threading.Event)


@dataclasses.dataclass(frozen=True)
class ExposedService:
    """A service's unix-socket directory (bound at the same path) and its client variables;
    ``database_url`` is its ``DATABASE_URL``, set only for a command that reaches no other
    service giving one."""

    name: str
    socket_dir: Path
    env: Mapping[str, str]
    database_url: str | None = None


class Cleanroom:
    """Runs commands in one workspace under a policy, and remembers every result.

    ``policy`` is a :class:`Policy`, a level name or a dict of fields (default ``standard``);
    ``backend`` is ``auto``, ``local``, the name of a registered backend (``bwrap``,
    ``unshare``, ``docker``, ...) or a :class:`~pytest_cleanroom.backends.base.Backend`
    instance (which the cleanroom uses but does not close); ``seed`` is drawn at
    random when not given; ``timeout`` overrides the policy's wall-clock limit for every command;
    ``env`` is layered on the deterministic environment of every command; while
    ``cancel_event`` is set, commands do not start (their results say ``cancelled``).
    ``per_process_limits`` accepts a backend that can hold ``memory_limit`` and
    ``cpu_time_limit`` per process only (no cgroup here); the results then name the policy
    ``<name>+per_process_limits`` and carry its own digest.
    Raises :class:`~pytest_cleanroom.errors.PolicyError` for an unknown policy and
    :class:`~pytest_cleanroom.errors.BackendUnavailableError` when no backend can honour it.
    """

    def __init__(
        self,
        workspace: Workspace | str | Path,
        *,
        policy: PolicyLike = None,
        backend: str | Backend = "auto",
        seed: int | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cancel_event: threading.Event | None = None,
        per_process_limits: bool = False,
    ) -> None:
        self.policy: Policy = _coerce_policy(policy)
        self.per_process_limits = per_process_limits
        if seed is not None and (not isinstance(seed, int) or seed < 0):
            raise ValueError(f"the cleanroom seed must be a non-negative int, got {seed!r}")
        self.timeout: float | None = _check_timeout(timeout)
        # Resolved before the workspace is created: a refusal leaves nothing behind.
        self._backend: Backend
        self._backend, self.backend_reasons = select_backend(
            backend, self.policy, per_process_limits=per_process_limits
        )
        self.backend_name: str = self._backend.name
        self._fitted: dict[str, Policy] = {}
        self._fitted_last: tuple[Policy, Policy] | None = None  # (policy, fitted): the usual one
        self.workspace: Workspace = (
            workspace if isinstance(workspace, Workspace) else Workspace(workspace)
        )
        self.seed: int = new_seed() if seed is None else seed
        self.env: dict[str, str] = dict(env or {})
        self.history: list[RunResult] = []
        self.services: dict[str, ExposedService] = {}
        self.backend_requested = backend if isinstance(backend, str) else self.backend_name
        self._owns_backend = isinstance(backend, str)
        self.cancel_event = cancel_event
        self._listeners: list[RunListener] = []
        self._lock = threading.Lock()
        self._in_flight: set[_InFlight] = set()
        self._cancels = 0  # cancel() calls in progress; new commands wait for them
        self._cancel_done = threading.Condition(self._lock)
        self._closed = False
        self._bound: Path | None = None  # what /workspace shows instead, see bind_workspace

    def __repr__(self) -> str:
        return (
            f"Cleanroom({str(self.workspace.root)!r}, policy={self.policy.name!r}, "
            f"backend={self.backend_name!r}, seed={self.seed})"
        )

    def __enter__(self) -> Cleanroom:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running -------------------------------------------------------------------------------

    def run(
        self,
        cmd: Command,
        *,
        policy: PolicyLike = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stdin: str | bytes | None = None,
    ) -> RunResult:
        """Run ``cmd`` (argv list, or a string for ``sh -c``) in the sandbox.

        ``policy`` replaces the cleanroom's policy for this command (the pytest fixture only
        lets it tighten the command line's); ``timeout`` overrides the wall-clock limit; ``env``
        is layered on top; ``cwd`` is relative to the workspace (or an absolute sandbox path).
        A program that does not exist gives exit code 127 and a ``cleanroom: command not found``
        line on stderr. Ctrl-C kills the command's whole tree before ``KeyboardInterrupt``
        propagates. :meth:`cancel` (from another thread) stops it.
        """
        if self._closed:
            raise CleanroomError(f"{self!r} is closed: it cannot run {cmd!r}")
        argv = _argv(cmd)
        run_policy = self._fit(self.policy if policy is None else _coerce_policy(policy))
        limit = _check_timeout(timeout)
        if limit is None:
            limit = self.timeout if self.timeout is not None else run_policy.timeout
        _ensure_home(self.workspace.root / HOME_DIR)
        services = [s for s in self.services.values() if run_policy.allows_service(s.name)]
        spec = CommandSpec(
            argv=argv,
            workspace=self.workspace_in_use,
            cwd=self._sandbox_cwd(cwd),
            env=build_environment(
                seed=self.seed,
                allowlist=run_policy.env_allowlist,
                layers=(*(s.env for s in services), _database_url(services), self.env, env),
                path=sandbox_path(FIXED_PATH, interpreter_readable=run_policy.interpreter_readable),
            ),
            policy=run_policy,
            seed=self.seed,
            timeout=limit,
            stdin=stdin.encode() if isinstance(stdin, str) else stdin,
            mounts=tuple(Mount(s.socket_dir) for s in services),
        )
        flight = self._enter(spec)
        try:
            result = _not_started(spec, self.backend_name) if flight.cancelled else self._run(spec)
        finally:
            self._leave(flight)
        if flight.cancelled:
            result = dataclasses.replace(result, cancelled=True)
        if result.workspace is not None and result.workspace != self.workspace.root:
            result = dataclasses.replace(result, workspace=self.workspace.root)
        with self._lock:
            self.history.append(result)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(result)
        return result

    def _fit(self, policy: Policy) -> Policy:
        """The policy a command under ``policy`` runs and is recorded under (checked once)."""
        known = self._fitted_last
        if known is not None and known[0] is policy:
            return known[1]
        key = policy.model_dump_json()
        if key not in self._fitted:
            fitted = fit_policy(self._backend, policy, per_process_limits=self.per_process_limits)
            self._fitted[key] = fitted
        self._fitted_last = (policy, self._fitted[key])
        return self._fitted[key]

    def _run(self, spec: CommandSpec) -> RunResult:
        backend = self._backend
        backend.stage_in(spec)
        try:
            return backend.run(spec)
        finally:
            backend.stage_out(spec)

    def cancel(self, timeout: float = 30.0) -> int:
        """Stop every command running in this cleanroom now, from any thread; the cleanroom
        stays usable. Returns how many commands were cancelled.

        Each command's whole process tree is killed and its :class:`RunResult` says
        ``cancelled=True`` (exit code 137). ``cancel`` returns once they have all returned (or
        after ``timeout`` seconds). Commands that start while it runs wait for it; commands
        started afterwards run normally. To stop a command that another thread may be just
        about to start, give the cleanroom a ``cancel_event`` and set it before calling
        ``cancel``: no command starts while that event is set.
        """
        with self._lock:
            targets = list(self._in_flight)
            for flight in targets:
                flight.cancelled = True
            # Only this cleanroom's commands: a backend may serve other cleanrooms too.
            specs = [flight.spec for flight in targets]
            self._cancels += 1
        try:
            if targets:
                deadline = time.monotonic() + timeout
                for flight in targets:
                    # Repeated: a command still being set up registers with its backend late.
                    while not flight.done.is_set() and time.monotonic() < deadline:
                        self._backend.cancel_commands(specs)
                        flight.done.wait(_CANCEL_TICK)
        finally:
            with self._lock:
                self._cancels -= 1
                self._cancel_done.notify_all()
        return len(targets)

    def _enter(self, spec: CommandSpec) -> _InFlight:
        with self._lock:
            while self._cancels:
                self._cancel_done.wait()
            event = self.cancel_event
            flight = _InFlight(spec, cancelled=event is not None and event.is_set())
            self._in_flight.add(flight)
        return flight

    def _leave(self, flight: _InFlight) -> None:
        with self._lock:
            self._in_flight.discard(flight)
        flight.done.set()

    def _sandbox_cwd(self, cwd: str | None) -> str:
        if cwd is None or cwd in ("", "."):
            return WORKSPACE_PATH
        if os.path.isabs(cwd):
            return os.path.normpath(cwd)
        host = self.workspace.path(cwd)
        if not host.is_dir():
            raise WorkspaceError(f"cwd {cwd!r} is not a directory in the workspace {host.parent}")
        return str(PurePosixPath(WORKSPACE_PATH) / host.relative_to(self.workspace.root))

    @property
    def workspace_in_use(self) -> Path:
        """The host directory that commands see at ``/workspace`` now: the workspace, or the
        directory given to :meth:`bind_workspace` while its block runs."""
        bound = self._bound
        return self.workspace.root if bound is None else bound

    @property
    def backend(self) -> Backend:
        """The backend this cleanroom runs commands on."""
        return self._backend

    @property
    def can_bind_workspace(self) -> bool:
        """Whether :meth:`bind_workspace` works on this cleanroom's backend."""
        return self._backend.can_bind_workspace

    @contextlib.contextmanager
    def bind_workspace(self, directory: Path) -> Iterator[None]:
        """Inside the block, commands see ``directory`` at ``/workspace`` instead of the
        workspace (the repeat check runs a command's first run in a copy-on-write view of
        the workspace this way). Results still name the workspace. Only on a backend whose
        ``can_bind_workspace`` is true (bubblewrap, unshare: docker's daemon may not see the
        directory's mounts)."""
        if not self.can_bind_workspace:
            raise CleanroomError(f"the {self.backend_name} backend cannot bind another workspace")
        previous, self._bound = self._bound, Path(directory)
        try:
            yield
        finally:
            self._bound = previous

    # -- services, listeners, lifecycle ----------------------------------------------------------

    def expose_service(
        self,
        name: str,
        socket_dir: Path,
        env: Mapping[str, str],
        *,
        database_url: str | None = None,
    ) -> None:
        """Bind a service's unix-socket directory into the sandbox if the policy allows ``name``.

        ``socket_dir`` appears at the same path inside; ``env`` (e.g. ``PGHOST``) is added to the
        environment of every later command whose policy lists ``name`` in ``allowed_services``,
        and ``database_url`` as ``DATABASE_URL`` when no other service of that command gives one.
        """
        directory = Path(socket_dir).resolve()
        if not directory.is_dir():
            raise CleanroomError(f"service {name!r}: socket directory {directory} does not exist")
        with self._lock:
            self.services[name] = ExposedService(name, directory, dict(env), database_url)

    def add_listener(self, listener: RunListener) -> None:
        """Call ``listener`` with every RunResult (reports, attestations, repeat checks)."""
        with self._lock:
            self._listeners.append(listener)

    def replica(self, workspace: Workspace | str | Path) -> Cleanroom:
        """A cleanroom like this one (policy, backend, seed, timeout, env, services; not the
        listeners or history) on another workspace: for replaying commands."""
        twin = type(self)(workspace, **self._replica_settings())
        twin.services = dict(self.services)
        return twin

    def prepare_ahead(self) -> None:
        """Have the backend get ready for a command in the background (where it can), so that
        this cleanroom's first command costs what later ones do."""
        self._backend.prepare_ahead()

    def _replica_settings(self) -> dict[str, Any]:
        """The constructor arguments :meth:`replica` passes on (subclasses add their own)."""
        return {
            "policy": self.policy,
            "backend": self.backend_name if self._owns_backend else self._backend,
            "seed": self.seed,
            "timeout": self.timeout,
            "env": self.env,
        }

    def close(self) -> None:
        """Kill every command still running (from any thread); later ``run`` calls fail. A
        backend given as an instance is not closed: it may serve other cleanrooms."""
        self._closed = True
        if self._owns_backend:
            self._backend.close()
        elif self._in_flight:
            self.cancel()

    @property
    def closed(self) -> bool:
        return self._closed

    def run_scenario(self, scenario: Scenario) -> ScenarioResult:
        """Run a multi-step scenario in this cleanroom (see :mod:`pytest_cleanroom.scenarios`)."""
        from .scenarios.runner import run_scenario

        return run_scenario(self, scenario)


def _database_url(services: list[ExposedService]) -> dict[str, str]:
    """``DATABASE_URL`` of the one database service a command reaches; none for two (say
    ``postgres`` and ``mysql``): which one it named would depend on fixture order."""
    urls = [s.database_url for s in services if s.database_url]
    return {"DATABASE_URL": urls[0]} if len(urls) == 1 else {}


def _not_started(spec: CommandSpec, backend: str) -> RunResult:
    return make_result(
        spec,
        backend=backend,
        exit_code=EXIT_CANCELLED,
        stdout=b"",
        stderr=_NOT_STARTED_NOTE,
        duration=0.0,
        started_at=time.time(),
    )


def _coerce_policy(policy: PolicyLike) -> Policy:
    if isinstance(policy, Mapping):
        return Policy.coerce(dict(policy))
    return Policy.coerce(policy)


def _check_timeout(timeout: float | None) -> float | None:
    if timeout is not None and not timeout > 0:
        raise ValueError(f"a cleanroom timeout must be a positive number of seconds: {timeout!r}")
    return timeout


def _argv(cmd: Command) -> tuple[str, ...]:
    if isinstance(cmd, str):
        return ("/bin/sh", "-c", cmd)
    if isinstance(cmd, bytes):
        raise TypeError("a cleanroom command is a str (for sh -c) or a sequence of str")
    argv = tuple(os.fspath(part) for part in cmd)
    if not argv or not argv[0]:
        raise ValueError("a cleanroom command needs at least a program name")
    for part in argv:
        if not isinstance(part, str):
            raise TypeError(f"cleanroom command arguments must be str, got {part!r}")
        if "\0" in part:
            raise ValueError(f"cleanroom command argument contains a NUL byte: {part!r}")
    return argv


def run(
    cmd: Command,
    *,
    workspace: Workspace | str | Path | None = None,
    policy: PolicyLike = None,
    backend: str | Backend = "auto",
    seed: int | None = None,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    stdin: str | bytes | None = None,
    per_process_limits: bool = False,
) -> RunResult:
    """Run one command under ``policy`` (default ``standard``); ``per_process_limits`` as for
    :class:`Cleanroom`.

    Without ``workspace``, the command gets a fresh temporary one that is removed afterwards
    (the result's ``workspace`` is then ``None``); pass a directory to keep what it writes.
    """
    scratch = None if workspace is not None else tempfile.mkdtemp(prefix="cleanroom-")
    try:
        room = Cleanroom(
            workspace if workspace is not None else str(scratch),
            policy=policy,
            backend=backend,
            seed=seed,
            per_process_limits=per_process_limits,
        )
        with room:
            result = room.run(cmd, timeout=timeout, env=env, cwd=cwd, stdin=stdin)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return result if scratch is None else dataclasses.replace(result, workspace=None)


def run_with_policy(policy: Policy | str, cmd: Command, **kwargs: Any) -> RunResult:
    """Run one command under ``policy``; keyword arguments as for :func:`run`."""
    return run(cmd, policy=policy, **kwargs)


def _ensure_home(home: Path) -> None:
    """Make the commands' ``HOME`` a real directory of the workspace: a link, file or FIFO a
    command left at its place is removed (it would send later runs out of the workspace or make
    every one of them fail)."""
    try:
        info = os.lstat(home)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISDIR(info.st_mode):
        home.unlink()
        info = None
    if info is None:
        home.mkdir(mode=0o755, exist_ok=True)
