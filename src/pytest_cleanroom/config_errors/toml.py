"""Reading TOML: the ``tomllib``/``tomli`` shim, and one error with the file, line and column.

Every TOML file of the project (``*.scenario.toml``, ``gpack.toml``, ``ggen.toml``, ``ggen.lock``,
``make.toml``, ``production.toml``) is read through :func:`parse_toml` or :func:`load_toml`, so
that a syntax error reads the same everywhere and a missing ``tomli`` on Python 3.10 is found once.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import TomlSyntaxError
from .positions import KeyLines

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]

_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)")
_END = re.compile(r"\s*\(at end of document\)")

__all__ = ["TomlDocument", "load_toml", "parse_toml", "read_text", "tomllib"]


def _syntax_error(path: Path | None, text: str, exc: Exception) -> TomlSyntaxError:
    if isinstance(exc, RecursionError):
        reason = "arrays or inline tables nested too deeply"
        return TomlSyntaxError(path, f"not valid TOML: {reason}", reason=reason)
    reason = str(exc).split(";")[0]  # a 4,300-digit integer's message goes on about sys limits
    found = _POSITION.search(reason)
    line: int | None
    column: int | None
    if found:
        line, column = int(found.group(1)), int(found.group(2))
    elif _END.search(reason):
        line, column = max(1, len(text.splitlines())), None
    else:
        line = column = None
    detail = _END.sub("", _POSITION.sub("", reason)).strip()
    return TomlSyntaxError(
        path, f"not valid TOML: {detail}", line=line, column=column, reason=detail
    )


def parse_toml(text: str, path: Path | str | None = None) -> dict[str, Any]:
    """The data of TOML ``text`` (read from ``path``); :class:`TomlSyntaxError` with the position.

    A number of thousands of digits and tables nested thousands deep are syntax errors too,
    not a ``ValueError`` or ``RecursionError`` from inside the parser.
    """
    where = Path(path) if path is not None else None
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:
        raise _syntax_error(where, text, exc) from None
    return data


def read_text(path: Path) -> str:
    """The UTF-8 text of ``path``; :class:`TomlSyntaxError` names a byte that is not UTF-8.

    ``OSError`` (``FileNotFoundError`` included) is left to the caller, who knows whether a
    missing file is an error.
    """
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text (byte {exc.start})"
        raise TomlSyntaxError(path, reason, reason=reason) from None


@dataclass(frozen=True)
class TomlDocument:
    """A parsed TOML file: its data, its text, and where each key is."""

    path: Path
    text: str
    data: dict[str, Any]
    positions: KeyLines = field(repr=False)

    def where(self, loc: tuple[str | int, ...] | list[str | int]) -> str:
        """``file:line:column`` of the key at ``loc`` (as much of it as is known)."""
        found = self.positions.position(loc)
        return f"{self.path}:{found[0]}:{found[1]}" if found else str(self.path)


def load_toml(path: Path | str, *, text: str | None = None) -> TomlDocument:
    """Read and parse a TOML file (``text``: its content, already read).

    :class:`TomlSyntaxError` when it is not UTF-8 or not TOML; ``OSError`` when unreadable.
    """
    path = Path(path)
    text = read_text(path) if text is None else text
    return TomlDocument(path, text, parse_toml(text, path), KeyLines(text))
