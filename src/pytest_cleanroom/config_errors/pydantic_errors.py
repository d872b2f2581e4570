"""pydantic validation errors as problems a user can act on: which key, at which line, the fix.

:func:`problems_of` turns a :class:`pydantic.ValidationError` into :class:`Problem` records (the
key path as written in the file, its line and column, the known keys and the closest one);
:func:`format_validation_error` writes them as one message. pydantic is imported only here and
only when an error is being explained.
"""

from __future__ import annotations

import importlib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .positions import KeyLines
from .suggest import closest, hint_for

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

Loc = tuple[str | int, ...]
_SCALAR_TAGS = frozenset({"str", "int", "float", "bool", "bytes", "none", "list", "dict"})


class LazyModel:
    """A validator (for ``BeforeValidator``) that checks a table with a model imported on first use.

    Errors the model raises keep their location under the field, and :func:`model_at` finds
    the model through :meth:`model`, for its 'did you mean' hints.
    """

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def model(self) -> type[BaseModel]:
        """The model class, imported now."""
        model: type[BaseModel] = getattr(importlib.import_module(self.module), self.name)
        return model

    def __call__(self, value: Any) -> BaseModel:
        return self.model().model_validate(value)

    def __repr__(self) -> str:
        return f"LazyModel({self.module}.{self.name})"


def _is_model(value: Any) -> bool:
    from pydantic import BaseModel

    return isinstance(value, type) and issubclass(value, BaseModel)


def _lazy_model_in(metadata: Sequence[Any]) -> type[BaseModel] | None:
    for item in metadata:
        validator = getattr(item, "func", None)
        if isinstance(validator, LazyModel):
            return validator.model()
    return None


def _unwrap(annotation: Any, loc: Sequence[str | int], index: int) -> tuple[Any, int]:
    """Step through ``Optional``/unions, ``dict[str, X]`` and ``list[X]`` (consuming the dict key
    or list index of ``loc``) to the annotation of the next key."""
    while True:
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if origin in (typing.Union, types.UnionType):
            models = [arg for arg in args if _is_model(arg)]
            others = [arg for arg in args if arg is not type(None)]
            annotation = models[0] if models else others[0] if len(others) == 1 else None
        elif origin is typing.Annotated:
            annotation = args[0]
        elif origin is dict and index < len(loc):
            annotation, index = args[1], index + 1
        elif origin is list and index < len(loc):
            annotation, index = args[0], index + 1
        else:
            return annotation, index


def model_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class that owns the keys at ``loc`` (dict keys and list indexes stepped over,
    lazily imported models included), if one does."""
    current: Any = model
    index = 0
    while index < len(loc):
        if not _is_model(current):
            return None
        info = current.model_fields.get(str(loc[index]))
        if info is None:
            return None
        index += 1
        lazy = _lazy_model_in(info.metadata)
        current, index = (lazy, index) if lazy else _unwrap(info.annotation, loc, index)
    return current if _is_model(current) else None


def _is_tag(part: str) -> bool:
    """pydantic's name for a branch of a union (``str``, ``list[str]``, ``function-after[...]``),
    which is noise to a user."""
    return part in _SCALAR_TAGS or "[" in part


def clean_loc(loc: Sequence[str | int], data: Any = None) -> tuple[Loc, Loc]:
    """(``loc`` without union-branch names, the part of it naming keys present in ``data``).

    With ``data``, any key that is not in the file is a branch name, except a last one (the
    missing key); without it, branch names are told by their shape (``str``, ``list[str]``).
    """
    kept: list[str | int] = []
    present: list[str | int] = []
    node, inside = data, data is not None
    for number, part in enumerate(loc):
        last = number == len(loc) - 1
        if inside and isinstance(node, dict) and str(part) in node:
            node = node[str(part)]
            present.append(part)
        elif inside and isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            present.append(part)
        elif isinstance(part, str) and (_is_tag(part) or (inside and not last)):
            continue
        elif inside and not isinstance(node, (dict, list)):
            continue  # nothing is below a scalar: a branch name
        else:
            inside = False
        kept.append(part)
    return tuple(kept), tuple(present) if data is not None else tuple(kept)


Kind = Literal["unknown", "missing", "invalid"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a validated file."""

    kind: Kind
    #: The key path (pydantic's, without union-branch names): ``("steps", 0, "run")``.
    loc: Loc
    #: The longest part of ``loc`` present in the file (the missing key is not).
    present: Loc
    #: What pydantic says (``Value error, `` dropped); empty for unknown and missing keys.
    message: str
    value: Any
    #: The keys the table allows (for an unknown key), and the closest of them.
    known: tuple[str, ...] = ()
    suggestion: str | None = None
    line: int | None = None
    column: int | None = None

    @property
    def key(self) -> str:
        """The last key of :attr:`loc` (``"run"``)."""
        return str(self.loc[-1]) if self.loc else ""

    @property
    def dotted(self) -> str:
        """The key path as one string: ``steps[0].run``."""
        out = ""
        for part in self.loc:
            out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
        return out

    @property
    def table(self) -> str:
        """The table holding the key: ``[lifecycle.build]``, or ``the top level``."""
        parent = [str(part) for part in self.loc[:-1]]
        return f"[{'.'.join(parent)}]" if parent else "the top level"

    def hint(self, *, aside: bool = False) -> str:
        """``"; did you mean 'x'?"`` (``aside``: ``" (did you mean 'x'?)"``) or ``""``."""
        return hint_for(self.suggestion, aside=aside)

    @property
    def shown_value(self) -> str:
        """`` (got 'x')`` unless the message already quotes the value or it is a whole table."""
        if self.kind != "invalid" or isinstance(self.value, (dict, list)):
            return ""
        text = repr(self.value)
        if text in self.message:
            return ""
        return f" (got {text[:60]}...)" if len(text) > 80 else f" (got {text})"

    def describe(self) -> str:
        """The problem in one sentence naming the key and the fix."""
        if self.kind == "unknown":
            return f"unknown key {self.key!r} in {self.table}{self.hint()}"
        if self.kind == "missing":
            where = ".".join(str(part) for part in self.loc[:-1]) or "the top level"
            return f"[{where}] is missing the required key {self.key!r}"
        return f"{self._subject()}: {self.message}{self.shown_value}"

    def _subject(self) -> str:
        if not self.present:
            return "the top level"
        if len(self.present) == 1:
            return f"key {str(self.present[0])!r}"
        parent = ".".join(str(part) for part in self.present[:-1])
        return f"key {str(self.present[-1])!r} in [{parent}]"


def problems_of(
    exc: ValidationError,
    model: type[BaseModel],
    *,
    data: Any = None,
    positions: KeyLines | None = None,
) -> list[Problem]:
    """The problems of ``exc`` (raised validating ``data`` with ``model``), one per key.

    Lines and columns come from ``positions``; ``data`` (the parsed file) tells a key present in
    the file from a union-branch name or a missing key.
    """
    found: list[Problem] = []
    seen: set[tuple[str, Loc]] = set()
    for error in exc.errors():
        loc, present = clean_loc(tuple(error["loc"]), data)
        kind: Kind = (
            "unknown"
            if error["type"] == "extra_forbidden"
            else "missing"
            if error["type"] == "missing"
            else "invalid"
        )
        if (kind, loc) in seen:
            continue
        seen.add((kind, loc))
        known: tuple[str, ...] = ()
        suggestion = None
        if kind == "unknown" and loc:
            owner = model_at(model, loc[:-1])
            known = tuple(owner.model_fields) if owner is not None else ()
            suggestion = closest(str(loc[-1]), known)
        position = positions.position(present) if positions is not None and present else None
        found.append(
            Problem(
                kind=kind,
                loc=loc,
                present=present,
                message=""
                if kind != "invalid"
                else str(error["msg"]).removeprefix("Value error, "),
                value=error.get("input"),
                known=known,
                suggestion=suggestion,
                line=position[0] if position else None,
                column=position[1] if position else None,
            )
        )
    return found


def format_problems(problems: Sequence[Problem], *, what: str) -> str:
    """``invalid <what>: <problem>``, or one problem per line (``line N: ...``) sorted by line."""
    ordered = sorted(problems, key=lambda p: (p.line is None, p.line or 0))
    if len(ordered) == 1:
        return f"invalid {what}: {ordered[0].describe()}"
    lines = [f"  line {p.line}: {p.describe()}" if p.line else f"  {p.describe()}" for p in ordered]
    return f"invalid {what}:\n" + "\n".join(lines)


def format_validation_error(
    exc: ValidationError,
    model: type[BaseModel],
    *,
    path: Path | str,
    data: Any = None,
    positions: KeyLines | None = None,
    what: str | None = None,
) -> tuple[str, int | None]:
    """(one message listing every problem of ``exc``, the line of the first) for the file
    ``path``; ``what`` names the file kind (default: the file's name)."""
    problems = problems_of(exc, model, data=data, positions=positions)
    first = min((p.line for p in problems if p.line is not None), default=None)
    return format_problems(problems, what=what or Path(path).name), first
