"""The ``cleanroom`` fixture's Cleanroom: the engine's, with the command-line policy as a floor
and every result reported through the cleanroom hooks.

Everything test code can change about what a command sees goes through the floor: the policy
(``run(policy=...)`` and the ``policy`` attribute), the timeout, the workspace and the directory
bound in its place (only directories the test owns), and the exposed service sockets (only the
run's own servers', or paths the floor lets through, which then become part of the recorded
policy).
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from ..engine import Cleanroom, Command, PolicyLike
from ..errors import BackendUnavailableError
from ..policy import Policy
from ..result import RunResult
from ..workspace import Workspace
from . import floor as floors
from .options import MARKER
from .records import PENDING_RESULTS
from .run_backends import run_backends
from .settings import CleanroomSettings


class PytestCleanroom(Cleanroom):
    """A :class:`Cleanroom` that can tighten, never weaken, the command-line policy ``floor``.

    A weaker ``run(policy=..., timeout=...)``, ``policy`` or ``timeout`` is clamped to the floor
    with a CleanroomPolicyWarning; a workspace or :meth:`bind_workspace` directory outside
    ``owned`` (and not an overlay of the workspace), or a service socket directory that is not
    one of ``service_dirs()`` nor let through by the floor, is refused with
    :class:`~pytest_cleanroom.pytest_plugin.floor.FloorError`.
    """

    def __init__(
        self,
        workspace: Workspace | str | Path,
        *,
        floor: Policy,
        owned: tuple[Path, ...] = (),
        service_dirs: Callable[[], set[Path]] = set,
        **kwargs: Any,
    ) -> None:
        self._floor = floor
        self._owned = tuple(Path(p).resolve() for p in owned)
        self._service_dirs = service_dirs
        root = workspace.root if isinstance(workspace, Workspace) else Path(workspace).resolve()
        self._check_owned(root, "the cleanroom's workspace", self._owned)
        super().__init__(workspace, **kwargs)

    @property
    def floor(self) -> Policy:
        """The command-line policy: no command of this cleanroom runs under anything weaker."""
        return self._floor

    @property
    def policy(self) -> Policy:
        return self._policy

    @policy.setter
    def policy(self, value: PolicyLike) -> None:
        final, _, refused = floors.clamp_run(self.floor, value, None)
        if refused:
            warnings.warn(floors.run_warning(self.floor, refused, "cleanroom.policy"), stacklevel=2)
        self._policy = final if final is not None else self.floor

    @property
    def timeout(self) -> float | None:
        return self._timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        _, clamped, refused = floors.clamp_run(self.floor, None, value)
        if refused:
            warnings.warn(
                floors.run_warning(self.floor, refused, "cleanroom.timeout"), stacklevel=2
            )
        self._timeout = clamped

    def run(
        self,
        cmd: Command,
        *,
        policy: Policy | str | Mapping[str, Any] | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stdin: str | bytes | None = None,
    ) -> RunResult:
        final, timeout, refused = floors.clamp_run(self.floor, policy, timeout)
        if refused:
            warnings.warn(floors.run_warning(self.floor, refused, "cleanroom.run"), stacklevel=2)
        extra = self._unlisted_service_dirs(final or self.policy)
        if extra:
            # Let through by the floor: the command sees them, so its recorded policy says so.
            base = final or self.policy
            final = base.replace(readable_paths=(*base.readable_paths, *map(str, extra)))
        return super().run(cmd, policy=final, timeout=timeout, env=env, cwd=cwd, stdin=stdin)

    def expose_service(
        self,
        name: str,
        socket_dir: Path,
        env: Mapping[str, str],
        *,
        database_url: str | None = None,
    ) -> None:
        """As :meth:`Cleanroom.expose_service`, for the socket directories of the run's own
        servers only, unless the floor lets ``socket_dir`` through (``readable_paths``)."""
        self._check_service_dir(name, Path(socket_dir).resolve())
        super().expose_service(name, socket_dir, env, database_url=database_url)

    @contextlib.contextmanager
    def bind_workspace(self, directory: Path) -> Iterator[None]:
        """As :meth:`Cleanroom.bind_workspace`, for a directory the test owns only."""
        self._check_owned(Path(directory).resolve(), "bind_workspace", self._roots())
        with super().bind_workspace(directory):
            yield

    def _replica_settings(self) -> dict[str, Any]:
        # Replays keep the floor: they obey the same rule as the test's own commands.
        return {
            **super()._replica_settings(),
            "floor": self.floor,
            "owned": self._roots(),
            "service_dirs": self._service_dirs,
        }

    # -- the floor's rules ---------------------------------------------------------------------

    def _roots(self) -> tuple[Path, ...]:
        return (*self._owned, self.workspace.root)

    def _check_owned(self, directory: Path, what: str, roots: tuple[Path, ...]) -> None:
        """Refuse ``directory`` unless it is one of ``roots`` or under one (the test's
        workspace, its run's base temp), or an overlay showing one of them."""
        if _under(directory, roots):
            return
        from ..repeat.overlay import overlay_lower

        lower = overlay_lower(directory)
        if lower is not None and _under(lower.resolve(), roots):
            return
        raise floors.FloorError(
            f"{what}: {directory} is not a directory this test owns; under "
            f"--cleanroom-policy={self.floor.name} a command may only see the test's workspace "
            f"and directories under {', '.join(map(str, self._owned)) or 'its tmp_path'} there"
        )

    def _check_service_dir(self, name: str, directory: Path) -> None:
        if directory in self._service_dirs() or _under(
            directory, _resolved(self.floor.readable_paths)
        ):
            return
        raise floors.FloorError(
            f"expose_service({name!r}): {directory} is not the socket directory of one of this "
            f"run's servers, and --cleanroom-policy={self.floor.name} does not let it through "
            "(readable_paths): a test may expose only the plugin's own services"
        )

    def _unlisted_service_dirs(self, policy: Policy) -> list[Path]:
        """Socket directories a command under ``policy`` would see that are not the run's own
        servers' (each checked against the floor again: ``services`` may be set directly)."""
        trusted = self._service_dirs()
        extra = []
        for service in self.services.values():
            if policy.allows_service(service.name) and service.socket_dir not in trusted:
                self._check_service_dir(service.name, service.socket_dir)
                if not _under(service.socket_dir, _resolved(policy.readable_paths)):
                    extra.append(service.socket_dir)
        return extra


def _under(directory: Path, roots: tuple[Path, ...]) -> bool:
    return any(directory == root or root in directory.parents for root in roots)


def _resolved(paths: tuple[str, ...]) -> tuple[Path, ...]:
    return tuple(Path(p).resolve() for p in paths)


def _run_service_dirs(config: pytest.Config) -> Callable[[], set[Path]]:
    def dirs() -> set[Path]:
        if "pytest_cleanroom.services.plugin" not in sys.modules:
            return set()
        from ..services.plugin import service_socket_dirs

        return service_socket_dirs(config)

    return dirs


def open_cleanroom(
    item: pytest.Item, workspace: Workspace, settings: CleanroomSettings
) -> PytestCleanroom:
    """Build the test's cleanroom under its effective policy and wire up the hooks."""
    floor = settings.policy
    try:
        policy, weakened = floors.effective_policy(list(item.iter_markers(MARKER))[::-1], floor)
    except floors.MarkerError as exc:
        message = f"invalid @pytest.mark.{MARKER} on {item.nodeid}: {exc}"
        raise pytest.fail.Exception(message, pytrace=False) from None
    if weakened:
        item.warn(floors.marker_warning(item.nodeid, floor, weakened))
    try:
        backend, passed_over = run_backends(item.config, settings).backend_for(policy)
        room = PytestCleanroom(
            workspace,
            floor=floor,
            owned=(item.config._tmp_path_factory.getbasetemp(),),  # type: ignore[attr-defined]
            service_dirs=_run_service_dirs(item.config),
            policy=policy,
            backend=backend,
            seed=settings.seed,
            per_process_limits=settings.per_process_limits,
        )
    except floors.FloorError as exc:
        raise pytest.fail.Exception(f"{item.nodeid}: {exc}", pytrace=False) from None
    except BackendUnavailableError as exc:
        message = f"cleanroom backend {settings.backend!r} unavailable: {exc}"
        raise pytest.fail.Exception(message, pytrace=False) from None

    room.backend_requested = settings.backend  # the run's backend is shared, not the room's
    room.backend_reasons = [*passed_over, *room.backend_reasons]

    def report(result: RunResult) -> None:
        item.stash.setdefault(PENDING_RESULTS, []).append(result)
        item.ihook.pytest_cleanroom_result(item=item, result=result)

    # Listen first, so that commands run by pytest_cleanroom_created implementations are reported.
    room.add_listener(report)
    try:
        item.ihook.pytest_cleanroom_created(item=item, cleanroom=room)
    except BaseException:
        room.close()
        raise
    return room
