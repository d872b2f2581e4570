"""Where a key of a TOML file is (line and column), for errors the TOML parser did not raise.

pydantic reports *which* key is wrong (``("lifecycle", "build", "comand")``) but not where it is;
this scanner follows table headers and dotted keys line by line to find it. It is deliberately
forgiving: it only needs to be right for files that parsed, and it answers ``None`` when unsure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

_HEADER = re.compile(r"^\s*(\[\[?)\s*(.+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+))*)\s*="""
)
_PART = re.compile(r"""\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*(?:\.|$)""")

#: One key of a file: (its full path, 1-based line, 1-based column).
KeyEntry = tuple[tuple[str, ...], int, int]


def _split_dotted(text: str) -> list[str]:
    parts: list[str] = []
    for match in _PART.finditer(text):
        token = match.group(1)
        if token[:1] in {'"', "'"}:
            token = token[1:-1]
        parts.append(token)
    return parts


def _column(line: str) -> int:
    return len(line) - len(line.lstrip()) + 1


def key_positions(text: str) -> list[KeyEntry]:
    """Every table header and key of TOML ``text`` as (full path, line, column).

    Array-of-tables entries get their index in the path: the second ``[[requirement]]`` is
    ``("requirement", "1")``, as pydantic reports it.
    """
    found: list[KeyEntry] = []
    table: tuple[str, ...] = ()
    array_counts: dict[tuple[str, ...], int] = {}
    in_multiline: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_multiline is not None:
            if line.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        header = _HEADER.match(line)
        if header and not _KEY.match(line):
            path = tuple(_split_dotted(header.group(2)))
            if header.group(1) == "[[":
                index = array_counts.get(path, -1) + 1
                array_counts[path] = index
                table = (*path, str(index))
            else:
                table = path
            found.append((table, number, _column(line)))
            continue
        key = _KEY.match(line)
        if key:
            found.append(((*table, *_split_dotted(key.group(1))), number, _column(line)))
            rest = line[key.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_multiline = quote
    return found


def key_lines(text: str) -> list[tuple[tuple[str, ...], int]]:
    """Every table header and key of ``text`` as (full path, 1-based line)."""
    return [(path, line) for path, line, _ in key_positions(text)]


class KeyLines:
    """The key positions of one file, read once, for many lookups (subclasses read other
    syntaxes: the YAML scenario files fill ``_found`` from PyYAML's nodes)."""

    def __init__(self, text: str) -> None:
        self._found: list[KeyEntry] = key_positions(text)

    def position(self, loc: Sequence[str | int]) -> tuple[int, int] | None:
        """(line, column) of the key that best matches ``loc``: the one sharing the longest
        prefix with it, the first such in the file."""
        wanted = tuple(str(part) for part in loc)
        best: tuple[int, int, int] | None = None  # (matched length, line, column)
        for path, line, column in self._found:
            common = 0
            for a, b in zip(path, wanted, strict=False):
                if a != b:
                    break
                common += 1
            if common and (best is None or common > best[0]):
                best = (common, line, column)
        return (best[1], best[2]) if best else None

    def locate(self, loc: Sequence[str | int]) -> int | None:
        """The line that best matches ``loc`` (see :meth:`position`)."""
        found = self.position(loc)
        return found[0] if found else None

    def line(self, loc: Sequence[str | int]) -> int:
        """:meth:`locate`, or the first line when nothing matches."""
        return self.locate(loc) or 1


def locate(text: str, loc: Sequence[str | int]) -> int | None:
    """The line of TOML ``text`` that best matches ``loc``."""
    return KeyLines(text).locate(loc)


def locate_in_file(path: Path, loc: Sequence[str | int]) -> int | None:
    """:func:`locate` on a file; ``None`` when it cannot be read."""
    try:
        return locate(path.read_text(encoding="utf-8"), loc)
    except (OSError, UnicodeDecodeError):
        return None


def locate_value(text: str, loc: Sequence[str | int], value: str) -> int | None:
    """The line of ``loc`` or, when the value spans lines (an array), the line holding ``value``."""
    start = locate(text, loc)
    if start is None:
        return None
    lines = text.splitlines()
    needle = re.compile(r"""["']""" + re.escape(value) + r"""["']""")
    for number in range(start, min(len(lines), start + 50) + 1):
        if needle.search(lines[number - 1]):
            return number
    return start


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string: quotes, backslashes and every control character
    escaped (TOML allows none of them raw)."""
    out = []
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
