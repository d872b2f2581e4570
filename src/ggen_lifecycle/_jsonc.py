"""JSON through the interpreter's C accelerator, without importing :mod:`json`.

Importing :mod:`json` compiles half a dozen regular expressions (and loads :mod:`re` with its
dependencies), several milliseconds that the cache-hit fast path cannot afford. :func:`loads`
and :func:`dumps` give exactly what ``json.loads`` and ``json.dumps`` (default separators,
``ensure_ascii``) give, through the same C scanner and encoder ``json`` uses; on an interpreter
without them they are ``json``'s own functions.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself is not imported: the cache-hit fast path loads this module
if TYPE_CHECKING:
    from typing import Any

_SPACE = " \t\n\r"


def _not_serializable(value: object) -> object:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


class _Context:
    """What the C scanner reads from a ``json.JSONDecoder``: its default settings."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {
        "NaN": float("nan"),
        "Infinity": float("inf"),
        "-Infinity": float("-inf"),
    }.__getitem__
    memo: dict[str, str] = {}


try:
    from _json import encode_basestring_ascii, make_encoder, make_scanner
except ImportError:  # another interpreter: json's own functions
    from json import dumps as _json_dumps
    from json import loads as _json_loads

    def loads(text: str) -> Any:
        """The value of the JSON document ``text``; ``ValueError`` if it is not one."""
        return _json_loads(text)

    def dumps(value: Any, *, sort_keys: bool = False) -> str:
        """``value`` as ``json.dumps(value, sort_keys=sort_keys)`` writes it."""
        return _json_dumps(value, sort_keys=sort_keys)

    def _dumps_default(value: Any) -> str:
        return _json_dumps(value, default=str)

else:
    _scan = make_scanner(_Context())  # type: ignore[arg-type]  # what it reads of a decoder

    def loads(text: str) -> Any:
        """The value of the JSON document ``text``; ``ValueError`` if it is not one."""
        start = len(text) - len(text.lstrip(_SPACE))
        try:
            value, end = _scan(text, start)
        except StopIteration as exc:
            raise ValueError(f"Expecting value: char {exc.value}") from None
        if text[end:].strip(_SPACE):
            raise ValueError(f"Extra data: char {end}")
        return value

    def dumps(value: Any, *, sort_keys: bool = False) -> str:
        """``value`` as ``json.dumps(value, sort_keys=sort_keys)`` writes it."""
        if isinstance(value, str):
            return str(encode_basestring_ascii(value))
        encode = make_encoder(
            {}, _not_serializable, encode_basestring_ascii, None, ": ", ", ", sort_keys, False, True
        )
        return "".join(encode(value, 0))

    def _dumps_default(value: Any) -> str:
        encode = make_encoder(
            {}, str, encode_basestring_ascii, None, ": ", ", ", False, False, True
        )
        return "".join(encode(value, 0))


class _Unusual(Exception):  # noqa: N818 - not an error: json's own encoder takes over
    """A mapping with keys other than strings."""


def dumps_indented(value: Any) -> str:
    """``value`` as ``json.dumps(value, indent=2, default=str)`` writes it (``--json``
    output)."""
    try:
        return _indented(value, 0)
    except _Unusual:
        import json

        return json.dumps(value, indent=2, default=str)


def _indented(value: Any, level: int) -> str:
    inner = "\n" + "  " * (level + 1)
    if isinstance(value, dict) and value:
        if not all(isinstance(k, str) for k in value):
            raise _Unusual
        items = [f"{_dumps_default(k)}: {_indented(v, level + 1)}" for k, v in value.items()]
    elif isinstance(value, (list, tuple)) and value:
        items = [_indented(v, level + 1) for v in value]
    else:
        return _dumps_default(value)
    opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
    return opening + inner + ("," + inner).join(items) + "\n" + "  " * level + closing
