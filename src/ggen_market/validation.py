"""Turn pydantic validation errors into one message naming the file, the key and the fix."""

from __future__ import annotations

import importlib
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ._toml import tomllib
from .errors import ManifestError
from .suggest import did_you_mean


def read_toml(path: Path, *, text: str | None = None) -> dict[str, Any]:
    """Parse a TOML file, raising :class:`ManifestError` that names the file and the line."""
    try:
        data = text if text is not None else path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not UTF-8 text") from None
    try:
        parsed: dict[str, Any] = tomllib.loads(data)
        return parsed
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: not valid TOML: {exc}") from None
    except (ValueError, RecursionError) as exc:  # thousands of digits, deep nesting
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ManifestError(f"{path}: not valid TOML: {reason}") from None


class LazyModel:
    """A validator (for ``BeforeValidator``) that checks a table with a model imported on first use.

    Errors the model raises keep their location under the field, and :func:`format_validation_error`
    finds the model through :meth:`model` for its 'did you mean' hints.
    """

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def model(self) -> type[BaseModel]:
        model: type[BaseModel] = getattr(importlib.import_module(self.module), self.name)
        return model

    def __call__(self, value: Any) -> BaseModel:
        return self.model().model_validate(value)

    def __repr__(self) -> str:
        return f"LazyModel({self.module}.{self.name})"


def _submodel(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that owns the last element of ``loc`` (for suggestions), if known."""
    current: type[BaseModel] = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part)
        if field is None:
            return None
        found = _model_in(field.annotation) or _lazy_model_in(field.metadata)
        if found is None:
            return None
        current = found
    return current


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _lazy_model_in(metadata: list[Any]) -> type[BaseModel] | None:
    for item in metadata:
        validator = getattr(item, "func", None)
        if isinstance(validator, LazyModel):
            return validator.model()
    return None


def _where(loc: tuple[int | str, ...], tables: tuple[str, ...]) -> str:
    """``[gpack] version`` / ``[[steps]] #2 run`` / ``[dependencies] "io.x"``."""
    if not loc:
        return "(top level)"
    head, *rest = loc
    label = f"[[{head}]]" if head in tables else f"[{head}]"
    parts = [label]
    for item in rest:
        parts.append(f"#{item + 1}" if isinstance(item, int) else str(item))
    return " ".join(parts)


def format_validation_error(
    path: Path,
    model: type[BaseModel],
    exc: ValidationError,
    *,
    array_tables: tuple[str, ...] = (),
    section: str | None = None,
) -> ManifestError:
    """One :class:`ManifestError` listing every problem of ``exc``, with 'did you mean' hints.

    Locations are written as TOML tables (``[gpack] version``), or as ``section key`` when
    ``section`` is given (``front matter: to``).
    """
    lines: list[str] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        if section is not None:
            where = f"{section}: " + (".".join(str(p) for p in loc) or "(top level)")
        else:
            where = _where(loc, array_tables)
        if error["type"] == "extra_forbidden":
            owner = _submodel(model, loc[:-1])
            choices = list(owner.model_fields) if owner is not None else []
            key = str(loc[-1])
            kind = "table" if len(loc) == 1 and section is None else "key"
            lines.append(f"{where}: unknown {kind}{did_you_mean(key, choices)}")
        elif error["type"] == "missing":
            lines.append(f"{where}: required key missing")
        else:
            msg = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{where}: {msg}")
    head = f"{path}: " if len(lines) == 1 else f"{path}: {len(lines)} problems:\n  "
    return ManifestError(head + "\n  ".join(lines))
