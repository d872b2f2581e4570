"""gpack.toml and front-matter errors as one message naming the file, the line, the key and the fix.

The analysis (key path, line, closest known key) is the toolkit's
(:mod:`pytest_cleanroom.config_errors`); this module writes it the marketplace's way: TOML
tables (``[gpack] version: unknown key (did you mean 'name'?)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_cleanroom.config_errors.errors import TomlSyntaxError
from pytest_cleanroom.config_errors.positions import KeyLines
from pytest_cleanroom.config_errors.pydantic_errors import Problem, problems_of
from pytest_cleanroom.config_errors.toml import load_toml

from .errors import ManifestError

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError


def read_toml(path: Path, *, text: str | None = None) -> dict[str, Any]:
    """Parse a TOML file, raising :class:`ManifestError` that names the file and the line."""
    try:
        return load_toml(path, text=text).data
    except FileNotFoundError:
        raise ManifestError(f"{path}: file not found") from None
    except TomlSyntaxError as exc:
        raise ManifestError(f"{path}: {exc.message}{exc.at}") from None


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


def _line(problem: Problem, where: str, section: str | None) -> str:
    if problem.kind == "unknown":
        kind = "table" if len(problem.loc) == 1 and section is None else "key"
        return f"{where}: unknown {kind}{problem.hint(aside=True)}"
    if problem.kind == "missing":
        return f"{where}: required key missing"
    return f"{where}: {problem.message}"


def format_validation_error(
    path: Path,
    model: type[BaseModel],
    exc: ValidationError,
    *,
    array_tables: tuple[str, ...] = (),
    section: str | None = None,
    text: str | None = None,
) -> ManifestError:
    """One :class:`ManifestError` listing every problem of ``exc``, with 'did you mean' hints.

    Locations are written as TOML tables (``[gpack] version``), or as ``section key`` when
    ``section`` is given (``front matter: to``); ``text`` (the TOML source) adds the lines.
    """
    positions = KeyLines(text) if text is not None else None
    problems = problems_of(exc, model, positions=positions)
    lines: list[tuple[int | None, str]] = []
    for problem in problems:
        if section is not None:
            where = f"{section}: " + (".".join(str(p) for p in problem.loc) or "(top level)")
        else:
            where = _where(problem.loc, array_tables)
        lines.append((problem.line, _line(problem, where, section)))
    if len(lines) == 1:
        line, message = lines[0]
        return ManifestError(f"{path}:{line}: {message}" if line else f"{path}: {message}")
    shown = [f"line {line}: {message}" if line else message for line, message in lines]
    return ManifestError(f"{path}: {len(lines)} problems:\n  " + "\n  ".join(shown))
