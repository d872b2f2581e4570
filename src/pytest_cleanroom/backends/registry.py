"""Which backends exist: the entry-point group ``pytest_cleanroom.backends``, plus two aliases.

A distribution adds a backend by declaring, in its ``pyproject.toml``::

    [project.entry-points."pytest_cleanroom.backends"]
    mine = "my_package.backend:MyBackend"

where ``MyBackend`` subclasses :class:`~pytest_cleanroom.backends.base.Backend`. This
distribution declares its own backends the same way. Entry points are read the first time a
name is looked up (never when the plugin is imported), and each backend's module only when that
backend is used.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from importlib import import_module
from typing import TYPE_CHECKING

from ..errors import BackendUnavailableError

if TYPE_CHECKING:
    from .base import Backend

GROUP = "pytest_cleanroom.backends"
#: Names that choose among registered backends, best first.
ALIASES: dict[str, tuple[str, ...]] = {
    "auto": ("bwrap", "unshare", "docker"),
    "local": ("bwrap", "unshare"),
}
#: The backends this distribution declares in its pyproject.toml (a test keeps the two equal):
#: used when the installed metadata predates them (an editable install not yet re-installed).
SHIPPED: dict[str, str] = {
    "bwrap": "pytest_cleanroom.backends.bwrap:BwrapBackend",
    "unshare": "pytest_cleanroom.backends.unshare:UnshareBackend",
    "docker": "pytest_cleanroom.backends.docker:DockerBackend",
    "podman": "pytest_cleanroom.backends.podman:PodmanBackend",
}

_lock = threading.Lock()
_registered: dict[str, str] | None = None


def registered() -> dict[str, str]:
    """``{name: "module:Class"}`` of every concrete backend installed, read once per process."""
    global _registered
    with _lock:
        if _registered is None:
            from importlib.metadata import entry_points

            found = dict(SHIPPED)
            found.update((ep.name, ep.value) for ep in entry_points(group=GROUP))
            _registered = found
        return dict(_registered)


def forget() -> None:
    """Read the entry points again at the next look-up (after installing a distribution)."""
    global _registered
    with _lock:
        _registered = None


def names() -> tuple[str, ...]:
    """Every name a backend can be asked for: the aliases, then the concrete backends."""
    return (*ALIASES, *registered())


class BackendNames:
    """The backend names as a lazy container: the command line's choices, which must not read
    the entry points while pytest starts (only when a name is checked or listed)."""

    def __contains__(self, name: object) -> bool:
        return name in names()

    def __iter__(self) -> Iterator[str]:
        return iter(names())

    def __len__(self) -> int:
        return len(names())


def unknown(name: str) -> BackendUnavailableError:
    """The error for a name nothing registered."""
    return BackendUnavailableError(
        f"unknown cleanroom backend {name!r}: choose one of {', '.join(names())} (backends are "
        f"registered through the entry-point group {GROUP!r})"
    )


def load(name: str) -> type[Backend]:
    """The class of concrete backend ``name``; the error names what is missing."""
    from .base import Backend

    target = registered().get(name)
    if target is None:
        raise unknown(name)
    module_name, _, class_name = target.partition(":")
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as exc:
        raise _missing_module(name, module_name, exc) from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise BackendUnavailableError(
            f"the {name} backend's entry point {target!r} (group {GROUP!r}) does not name a "
            "subclass of pytest_cleanroom.backends.base.Backend"
        )
    return cls


def _missing_module(name: str, module_name: str, exc: ModuleNotFoundError) -> Exception:
    if exc.name is not None and module_name.startswith(exc.name):
        return BackendUnavailableError(
            f"the {name} backend is not part of this installation ({module_name} is missing)"
        )
    from ..config_errors.extras import extra_of, install_hint

    hint = f": {install_hint(exc.name)}" if exc.name and extra_of(exc.name) else ""
    return BackendUnavailableError(
        f"the {name} backend needs the Python package {exc.name!r}{hint}"
    )
