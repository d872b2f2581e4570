"""The services of cleanroom phases (``[lifecycle.X.cleanroom] services = [...]``), any kind.

Every kind registered with pytest-cleanroom (``postgres``, ``redis``, ``mysql``, third parties'
through the ``pytest_cleanroom.services`` entry point) is served through its protocol
(:mod:`pytest_cleanroom.services.protocol`), from the providers the pytest fixtures would choose.
A task running at the same time as others holds a *slot*: a worker identity of its own in the
run (``slot0``, ``slot1``...), as an xdist worker has in a pytest run. A kind with a server per
worker (``redis``) starts one per slot; a kind with one server per run (``postgres``, ``mysql``)
gives each slot's tasks databases under the slot's own prefix. Each task gets a handle of its own
from its slot's isolation, reset when the task ends; a slot is reused by the next task. Servers
start on the first task that needs them and stop when the run ends (Ctrl-C and failures too);
what a killed run left is removed before the first one starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import TaskFailedError

if TYPE_CHECKING:
    from pytest_cleanroom.engine import Cleanroom
    from pytest_cleanroom.services.hub import ServiceHub
    from pytest_cleanroom.services.protocol import Exposure, Isolation, RunContext, ServiceKind
    from pytest_cleanroom.services.providers import Choice
    from pytest_cleanroom.services.settings import ServiceSettings


@dataclass(frozen=True)
class TaskService:
    """One service of a task: the kind, the task's handle on its server, what a sandboxed
    command gets of that handle, and where the server's log stood when the task got it."""

    name: str
    exposure: Exposure
    kind: ServiceKind[Any, Any]
    handle: Any
    server: Any
    log_mark: float

    def failure_report(self) -> str:
        """For a failed task: the server's log lines about this task since it began, and why
        the server does not answer, if it does not (empty: nothing to say)."""
        parts = []
        try:
            text = self.kind.logs(self.handle, self.log_mark)
            problem = self.kind.health(self.server)
        except Exception as exc:  # a report, never a second failure
            text, problem = "", f"cannot tell whether the server answers: {exc}"
        if text.strip():
            parts.append(
                f"cleanroom {self.name} server log (since the task began):\n{text.rstrip()}"
            )
        if problem:
            parts.append(f"cleanroom {self.name} server: {problem}")
        return "\n".join(parts)


def expose_in(room: Cleanroom, handed: Sequence[TaskService]) -> None:
    """Bind each of ``handed`` into ``room`` as the pytest fixtures do: its socket directory (at
    the same path) and variables for every command whose policy allows the service, and
    ``DATABASE_URL`` for a command that reaches exactly one database service. A service reached
    over TCP only (no socket directory) is not exposed."""
    for service in handed:
        exposure = service.exposure
        if exposure.socket_dir is not None:
            room.expose_service(
                service.name, exposure.socket_dir, exposure.env, database_url=exposure.database_url
            )


class _Slot:
    """One worker identity of the run: its hub, and its isolation on each kind's server."""

    def __init__(self, hub: ServiceHub) -> None:
        self.hub = hub
        self.isolations: dict[str, Isolation[Any]] = {}
        self.servers: dict[str, Any] = {}

    def isolation(self, kind: ServiceKind[Any, Any]) -> Isolation[Any]:
        """This slot's isolation on ``kind``'s server (the server started on first need)."""
        if kind.name not in self.isolations:
            if kind.client_module:  # a missing client is said before a server is started
                __import__(kind.client_module)
            server = self.servers[kind.name] = self.hub.server(kind.name)
            self.isolations[kind.name] = kind.isolation(server, self.hub)
        return self.isolations[kind.name]

    def hand_out(self, kind: ServiceKind[Any, Any], isolation: Isolation[Any]) -> TaskService:
        """A handle of ``kind`` for one task (reset by the caller when the task ends)."""
        handle = isolation.isolate()
        try:
            return TaskService(
                kind.name,
                kind.expose(handle),
                kind,
                handle,
                self.servers[kind.name],
                kind.log_mark(handle),
            )
        except BaseException:  # not handed out: nobody else would reset it
            isolation.reset(handle)
            raise

    def forget(self, name: str) -> list[str]:
        """Close and drop the isolation on ``name`` (the next task gets a fresh one)."""
        self.servers.pop(name, None)
        isolation = self.isolations.pop(name, None)
        if isolation is None:
            return []
        try:
            isolation.close()
        except Exception as exc:
            return [f"could not close {name}'s isolation of {self.hub.run.worker_id}: {exc}"]
        return []

    def close(self) -> list[str]:
        return [problem for name in list(self.isolations) for problem in self.forget(name)]


class ServiceSession:
    """The servers of one ``ggen lifecycle`` invocation and its slots; :meth:`close` stops them."""

    def __init__(self, project_root: Path) -> None:
        self.project_root = project_root
        self._lock = threading.Lock()
        self._context: tuple[ServiceSettings, RunContext] | None = None
        self._choices: dict[str, Choice] = {}
        self._slots: list[_Slot] = []
        self._free: list[_Slot] = []
        self._problems: list[str] = []

    def _base(self) -> tuple[ServiceSettings, RunContext]:
        """The run's settings and :class:`RunContext` (made on first need, under the lock)."""
        if self._context is None:
            from pytest_cleanroom.owner import Owner
            from pytest_cleanroom.services.cleanup import sweep_leftovers
            from pytest_cleanroom.services.hub import RunContext, new_run_id
            from pytest_cleanroom.services.settings import ServiceSettings

            settings = ServiceSettings.resolve(
                option=lambda name: None,
                ini=lambda key: None,
                env=os.environ,
                base_dir=self.project_root,
            )
            # What a killed run (of ggen or pytest) left goes before this run starts its own.
            self._problems += sweep_leftovers(settings)
            shared_dir = Path(tempfile.mkdtemp(prefix="ggen-services-"))
            run = RunContext(run_id=new_run_id(), owner=Owner.current(), shared_dir=shared_dir)
            self._context = (settings, run)
        return self._context

    def _take_slot(self, names: Sequence[str]) -> tuple[_Slot, list[ServiceKind[Any, Any]]]:
        """The kinds called ``names`` (their providers chosen once for the run) and a free slot:
        the lowest-numbered one, or a new one."""
        from pytest_cleanroom.services.hub import ServiceHub
        from pytest_cleanroom.services.kinds import kind
        from pytest_cleanroom.services.providers import choose

        with self._lock:
            settings, run = self._base()
            wanted = [kind(name) for name in names]
            for k in wanted:
                if k.name not in self._choices:
                    self._choices[k.name] = choose(k.name, settings)
            if self._free:
                self._free.sort(key=self._slots.index)
                return self._free.pop(0), wanted
            number = len(self._slots)
            slot_run = dataclasses.replace(run, worker_id=f"slot{number}", worker_count=number + 1)
            slot = _Slot(ServiceHub(settings, slot_run, self._choices))
            self._slots.append(slot)
            return slot, wanted

    def _give_back(self, slot: _Slot, problems: list[str]) -> None:
        with self._lock:
            self._problems += problems
            self._free.append(slot)

    @contextlib.contextmanager
    def for_task(
        self, names: Sequence[str], *, phase: str, workspace: str | None, command: str | None = None
    ) -> Iterator[list[TaskService]]:
        """Hand out a handle of each kind in ``names`` to one task (starting servers on first
        need); each is reset, and the task's slot freed, when the block ends."""
        if not names:
            yield []
            return
        handed: list[tuple[TaskService, Isolation[Any]]] = []
        slot: _Slot | None = None
        try:
            with _as_task_error(phase=phase, workspace=workspace, command=command):
                slot, wanted = self._take_slot(names)
                for k in wanted:
                    isolation = slot.isolation(k)
                    handed.append((slot.hand_out(k, isolation), isolation))
            yield [service for service, _ in handed]
        finally:
            if slot is not None:
                self._give_back(slot, _reset(slot, handed))

    def close(self) -> list[str]:
        """Close every slot's isolations and stop every server of the run; returns problems
        worth reporting."""
        with self._lock:
            slots, self._slots, self._free = self._slots, [], []
            problems, self._problems = self._problems, []
            context, self._context = self._context, None
        for slot in slots:
            problems += slot.close()
        if context is not None:
            from pytest_cleanroom.services.hub import teardown_run

            run = context[1]
            problems += teardown_run(run.state_dir)
            shutil.rmtree(run.shared_dir, ignore_errors=True)
        return problems


def _reset(slot: _Slot, handed: list[tuple[TaskService, Isolation[Any]]]) -> list[str]:
    """Reset what a task was handed, last first; an isolation that cannot reset is closed and
    made anew for the slot's next task, so that nothing of this task reaches it."""
    problems: list[str] = []
    for service, isolation in reversed(handed):
        try:
            isolation.reset(service.handle)
        except Exception as exc:
            problems.append(
                f"could not reset {service.name} after a task of {slot.hub.run.worker_id}: {exc}"
            )
            problems += slot.forget(service.name)
    return problems


@contextlib.contextmanager
def _as_task_error(*, phase: str, workspace: str | None, command: str | None) -> Iterator[None]:
    """A service that cannot be provided fails the task with one message saying why."""
    from pytest_cleanroom.services.errors import ServiceError

    try:
        yield
        return
    except ServiceError as exc:
        reason = str(exc)
    except ModuleNotFoundError as exc:
        from pytest_cleanroom.config_errors.extras import missing_extra

        fix = missing_extra(exc)
        if fix is None:
            raise
        reason = fix
    raise TaskFailedError(
        f"cannot provide service for the cleanroom phase: {reason}",
        phase=phase,
        workspace=workspace,
        command=command,
    ) from None
