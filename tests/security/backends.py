"""The backends the security suite attacks, listed in one place."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pytest_cleanroom import Policy, cgroups
from pytest_cleanroom.backends import _nsinit_native, backend_problem, get_backend
from pytest_cleanroom.backends.base import CommandSpec
from pytest_cleanroom.backends.bwrap import BwrapBackend
from pytest_cleanroom.backends.local import NamespaceBackend
from pytest_cleanroom.backends.unshare import UnshareBackend
from pytest_cleanroom.environment import build_environment
from tests.conftest import require

#: Every backend the escape suite runs against. Add a backend here and it gets every probe.
SECURITY_BACKENDS: tuple[str, ...] = ("bwrap", "unshare", "docker")
#: The namespace backends among them (the engine's own sandboxes, warm or cold).
LOCAL_BACKENDS: list[str] = [name for name in SECURITY_BACKENDS if name != "docker"]
#: The backends the shipped conformance suite runs against: those above, and Podman, which is
#: registered through its entry point as a third party's backend would be.
CONFORMANCE_BACKENDS: tuple[str, ...] = (*SECURITY_BACKENDS, "podman")

_HINTS = {
    "bwrap": "apt-get install bubblewrap",
    "unshare": "apt-get install util-linux",
    "docker": "scripts/setup.sh --docker, then start the engine with scripts/docker-engine.sh",
    "podman": "scripts/setup.sh --docker, then scripts/podman-engine.sh start and "
    "scripts/podman-engine.sh images",
}


def require_backend(name: str) -> None:
    """Skip locally / fail in CI, saying exactly why, when ``name`` cannot run here."""
    __tracebackhide__ = True
    if name == "bwrap":
        require(shutil.which("bwrap") is not None, f"bwrap not on PATH ({_HINTS['bwrap']})")
    problem = backend_problem(name)
    require(
        problem is None, f"cleanroom backend {name!r} unusable here: {problem} ({_HINTS[name]})"
    )


#: How a local backend starts a command: ``warm`` entering the sandbox kept for its policy (a
#: root engine with cgroups), ``cold`` in a sandbox built for it (every command of a non-root
#: engine; a root engine without cgroups or with warm sandboxes off), on ``unshare`` also with
#: the Python set-up step (where no C compiler built the compiled one).
STARTS: dict[str, Callable[[], NamespaceBackend]] = {
    "bwrap-cold": lambda: BwrapBackend(warm=False),
    "bwrap-warm": BwrapBackend,
    "unshare-cold": lambda: UnshareBackend(warm=False),
    "unshare-python-cold": lambda: UnshareBackend(warm=False, native=False),
    "unshare-warm": UnshareBackend,
}


@contextlib.contextmanager
def started(start: str) -> Iterator[NamespaceBackend]:
    """The backend of ``start`` (a key of :data:`STARTS`), closed afterwards; skips locally /
    fails in CI where it cannot start commands that way here."""
    __tracebackhide__ = True
    require_backend(start.split("-")[0])
    if start.endswith("-warm"):
        require(
            os.geteuid() == 0 and cgroups.parents() is not None,
            "root with writable cgroups: only then do commands enter warm sandboxes",
        )
    if "python" not in start:
        require(_nsinit_native.program()[0] is not None, "the compiled set-up step (a C compiler)")
    backend = STARTS[start]()
    try:
        yield backend
    finally:
        backend.close()


def require_entering_ahead() -> None:
    """Skip locally / fail in CI unless the namespace backends enter sandboxes ahead here."""
    __tracebackhide__ = True
    require(
        os.geteuid() == 0 and cgroups.parents() is not None,
        "root with writable cgroups: only then are sandboxes entered ahead of commands",
    )
    require(_nsinit_native.program()[0] is not None, "the compiled set-up step (a C compiler)")


@contextlib.contextmanager
def entering_ahead(name: str, level: str) -> Iterator[NamespaceBackend]:
    """A namespace backend of its own for commands under ``level``, entering sandboxes ahead of
    them (skipped locally, failed in CI where it cannot), closed afterwards."""
    require_backend(name)
    require_entering_ahead()
    backend = get_backend(name, Policy.level(level))
    assert isinstance(backend, NamespaceBackend)
    try:
        yield backend
    finally:
        backend.close()


def wait_for_a_sandbox_entered_ahead(backend: object, limit: float = 60.0) -> None:
    """Wait until ``backend`` (a namespace backend) keeps a launcher ready that entered the
    warm sandbox of commands like its last one, so that its next command starts from it."""
    __tracebackhide__ = True
    preparer = backend._preparer  # type: ignore[attr-defined]
    end = time.monotonic() + limit
    while True:
        with preparer._cond:
            ready = list(preparer._ready)
            if any(p.entered is not None for p in ready):
                return
        if time.monotonic() >= end:
            warm = backend._warm_sandboxes()  # type: ignore[attr-defined]
            failure = getattr(warm, "failure", None) if warm is not None else "no warm sandboxes"
            raise AssertionError(
                f"no launcher entered a sandbox ahead within {limit} s: {len(ready)} ready, "
                f"none entered; preparer failed: {preparer._failed}; warm sandbox failure: "
                f"{failure!r}; holders: {warm.holders if warm is not None else []}"
            )
        time.sleep(0.01)


def probe_spec(argv: tuple[str, ...], workspace: Path, policy: Policy) -> CommandSpec:
    """A command for a backend's own ``run``: ``argv`` in ``workspace`` under ``policy``, seed 1,
    the deterministic environment, 60 s."""
    return CommandSpec(
        argv=argv,
        workspace=workspace,
        cwd="/workspace",
        env=build_environment(seed=1, allowlist=(), layers=()),
        policy=policy,
        seed=1,
        timeout=60,
    )
