"""Errors of the service fixtures (every kind). Each message names the fix."""

from __future__ import annotations

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
