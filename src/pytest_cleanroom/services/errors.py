"""Errors of the service fixtures (every kind). Each message names the fix."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import CleanroomError


class ServiceError(CleanroomError):
    """Base class of every error the services raise on purpose."""


class ServiceConfigError(ServiceError, ValueError):
    """An option, ini key, environment variable or URL has a value that cannot be used."""


class ServiceUnavailableError(ServiceError):
    """No provider can serve: binaries missing, Docker engine down, or no URL configured."""


class ServiceStartError(ServiceError):
    """A server was found but did not become ready (the message carries its log tail)."""


class TemplateError(ServiceError):
    """The suite's template database could not be loaded from its SQL files or callable."""


class DatabaseUrlWarning(UserWarning):
    """Two database services were exposed to one cleanroom: neither sets ``DATABASE_URL`` for a
    command that may reach both."""


def database_url_conflict(givers: Iterable[str]) -> str | None:
    """What to say when the services called ``givers``, each giving a ``DATABASE_URL``, are
    exposed to one cleanroom (``None``: one or none, nothing to say)."""
    names = sorted(givers)
    if len(names) < 2:
        return None
    return (
        f"{' and '.join(names)} both give a DATABASE_URL: a command that may reach both gets "
        f"none; use {', '.join(f'{n.upper()}_URL' for n in names)} (or allow one of them in that "
        "command's policy)"
    )
