"""The configuration-error toolkit: TOML reading, key positions, pydantic errors, suggestions.

The bottom layer of the project: it imports nothing from ``pytest_cleanroom``, ``ggen_market``,
``ggen_lifecycle`` or ``ggen_cli``, and all of them use it for the same jobs, so that a bad file
reads the same wherever it is loaded (file, line, column, field, "did you mean").

- :mod:`.toml`: :func:`load_toml` / :func:`parse_toml` (the ``tomllib``/``tomli`` shim inside);
- :mod:`.positions`: :class:`KeyLines`, where each key of a TOML text is;
- :mod:`.pydantic_errors`: :func:`problems_of` and :func:`format_validation_error`;
- :mod:`.suggest`: :func:`did_you_mean`, :func:`closest`, :func:`typo_of`;
- :mod:`.extras`: which extra installs which optional package (:func:`install_hint`).

Names are loaded on first use: importing the package costs nothing until a file is read.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import ConfigFileError, TomlSyntaxError

if TYPE_CHECKING:
    from .extras import install_hint, missing_extra
    from .positions import KeyLines
    from .pydantic_errors import LazyModel, Problem, format_validation_error, problems_of
    from .suggest import closest, did_you_mean, typo_of
    from .toml import TomlDocument, load_toml, parse_toml

_WHERE = {
    "install_hint": "extras",
    "missing_extra": "extras",
    "KeyLines": "positions",
    "LazyModel": "pydantic_errors",
    "Problem": "pydantic_errors",
    "format_validation_error": "pydantic_errors",
    "problems_of": "pydantic_errors",
    "closest": "suggest",
    "did_you_mean": "suggest",
    "typo_of": "suggest",
    "TomlDocument": "toml",
    "load_toml": "toml",
    "parse_toml": "toml",
}

__all__ = [
    "ConfigFileError",
    "KeyLines",
    "LazyModel",
    "Problem",
    "TomlDocument",
    "TomlSyntaxError",
    "closest",
    "did_you_mean",
    "format_validation_error",
    "install_hint",
    "load_toml",
    "missing_extra",
    "parse_toml",
    "problems_of",
    "typo_of",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
