"""Find the line of a key in a TOML file, for errors that the TOML parser did not raise.

pydantic reports *which* key is wrong (``("lifecycle", "build", "comand")``) but not where it is;
this scanner follows table headers and dotted keys line by line to find it (for ``make.toml``
and ``*.scenario.toml`` files alike). It is deliberately
forgiving: it only needs to be right for the files that parsed, and it answers ``None`` when unsure.
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


def _split_dotted(text: str) -> list[str]:
    parts: list[str] = []
    for match in _PART.finditer(text):
        token = match.group(1)
        if token[:1] in {'"', "'"}:
            token = token[1:-1]
        parts.append(token)
    return parts


def key_lines(text: str) -> list[tuple[tuple[str, ...], int]]:
    """Every table header and key of ``text`` as (full path, 1-based line).

    Array-of-tables entries get their index in the path: the second ``[[requirement]]`` is
    ``("requirement", "1")``, as pydantic reports it.
    """
    found: list[tuple[tuple[str, ...], int]] = []
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
            found.append((table, number))
            continue
        key = _KEY.match(line)
        if key:
            found.append(((*table, *_split_dotted(key.group(1))), number))
            rest = line[key.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_multiline = quote
    return found


class KeyLines:
    """The key lines of one TOML text, read once, for many lookups."""

    def __init__(self, text: str) -> None:
        self._found = key_lines(text)

    def locate(self, loc: Sequence[str | int]) -> int | None:
        """The line that best matches ``loc`` (the deepest key path sharing the longest prefix)."""
        wanted = tuple(str(part) for part in loc)
        best: tuple[int, int] | None = None  # (matched length, line)
        for path, line in self._found:
            common = 0
            for a, b in zip(path, wanted, strict=False):
                if a != b:
                    break
                common += 1
            if common == 0:
                continue
            if best is None or common > best[0]:
                best = (common, line)
        return best[1] if best else None

    def line(self, loc: Sequence[str | int]) -> int:
        """:meth:`locate`, or the first line when nothing matches."""
        return self.locate(loc) or 1


def locate(text: str, loc: Sequence[str | int]) -> int | None:
    """The line that best matches ``loc`` (the deepest key path sharing the longest prefix)."""
    return KeyLines(text).locate(loc)


def locate_in_file(path: Path, loc: Sequence[str | int]) -> int | None:
    """:func:`locate` on a file; ``None`` when it cannot be read."""
    try:
        return locate(path.read_text(encoding="utf-8"), loc)
    except OSError:
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
