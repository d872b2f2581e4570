"""The registry of service kinds (``postgres``, ``redis``, ``mysql``, and third parties').

Choosing a provider (:mod:`.providers`), starting servers (:mod:`.hub`), the fixtures
(:mod:`.plugin`) and the report header read this registry, not a list of names. A kind is a
:class:`~.protocol.ServiceKind` subclass, each built-in one in its own package; third parties add
theirs with an entry point in the group ``pytest_cleanroom.services`` naming the class.
"""

from __future__ import annotations

from typing import Any

from .errors import ServiceConfigError
from .protocol import ServiceKind, load

ENTRY_POINT_GROUP = "pytest_cleanroom.services"

#: The built-in kinds, each one package (loaded when the registry is first read).
BUILT_IN = {
    "postgres": ".postgres.kind:PostgresKind",
    "redis": ".redis.kind:RedisKind",
    "mysql": ".mysql.kind:MysqlKind",
}

_KINDS: dict[str, ServiceKind[Any, Any]] = {}
_loaded = False


def register(kind: ServiceKind[Any, Any]) -> None:
    """Add ``kind`` (replacing one of the same name)."""
    _KINDS[kind.name] = kind


def _checked(cls: Any, where: str) -> ServiceKind[Any, Any]:
    if not (isinstance(cls, type) and issubclass(cls, ServiceKind)):
        raise ServiceConfigError(f"{where} is not a ServiceKind subclass")
    try:
        return cls()
    except TypeError as exc:  # abstract methods left unwritten
        raise ServiceConfigError(f"{where}: {exc}") from None


def kinds() -> dict[str, ServiceKind[Any, Any]]:
    """Every registered kind, the entry points' included (loaded on first call)."""
    global _loaded
    if not _loaded:
        _loaded = True
        from importlib.metadata import entry_points

        for name, reference in BUILT_IN.items():
            _KINDS.setdefault(name, _checked(load(reference), reference))
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            where = f"entry point {entry.name} = {entry.value} (group {ENTRY_POINT_GROUP})"
            register(_checked(entry.load(), where))
    return dict(_KINDS)


def kind(name: str) -> ServiceKind[Any, Any]:
    """The kind called ``name``; one error listing the registered kinds otherwise."""
    known = kinds()
    if name not in known:
        from ..config_errors.suggest import did_you_mean

        raise ServiceConfigError(
            f"unknown service kind {name!r}{did_you_mean(name, known, aside=True)}: registered "
            f"kinds are {', '.join(sorted(known))}"
        )
    return known[name]


def check_names(names: list[str]) -> list[str]:
    """``names`` when each is a registered kind (a validator for configuration files); the
    :func:`kind` error for the first that is not."""
    for name in names:
        kind(name)
    return names


__all__ = ["ENTRY_POINT_GROUP", "ServiceKind", "check_names", "kind", "kinds", "register"]
