"""Tera's filters, tests and functions for templates written for ggen, on top of Jinja2's.

ggen's templates are Tera: filters take named arguments (``default(value=...)``,
``replace(from=..., to=...)``, ``split(pat=...)``), and Tera and ggen add filters Jinja2 lacks
(``json_encode``, ``trim_end``, ``group_by``, ``snake_case`` ...). Each filter here accepts both
Tera's named arguments and Jinja2's positional ones, so a Jinja2 template means what it did.
Everything returns plain data; nothing reads files, the environment or the network.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jinja2 import Undefined
from jinja2.filters import do_default, do_join, do_replace

from .sandbox import camel, kebab, local_name, pascal, snake

_MISSING: Any = object()  # an optional argument that was not given
_REQUIRED: Any = object()  # an argument without a default


def _arg(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], index: int, default: Any) -> Any:
    """A filter argument given by name (Tera) or by position (Jinja2)."""
    if name in kwargs:
        return kwargs.pop(name)
    if index < len(args):
        return args[index]
    if default is _REQUIRED:
        raise TypeError(f"missing argument {name}=")
    return default


def default(value: Any, /, *args: Any, **kwargs: Any) -> Any:
    """``default(value=x)`` (Tera) or ``default(x, boolean)`` (Jinja2)."""
    fallback = _arg("value", args, kwargs, 0, "")
    fallback = kwargs.pop("default_value", fallback)
    boolean = _arg("boolean", args, kwargs, 1, False)
    return do_default(value, fallback, boolean)


def replace(eval_ctx: Any, value: Any, /, *args: Any, **kwargs: Any) -> Any:
    """``replace(from=a, to=b)`` (Tera) or ``replace(a, b[, count])`` (Jinja2)."""
    old = _arg("from", args, kwargs, 0, _REQUIRED)
    new = _arg("to", args, kwargs, 1, _REQUIRED)
    count = _arg("count", args, kwargs, 2, None)
    return do_replace(eval_ctx, value, str(old), str(new), count)


def join(eval_ctx: Any, value: Iterable[Any], /, *args: Any, **kwargs: Any) -> str:
    """``join(sep=", ")`` (Tera) or ``join(", ", attribute=...)`` (Jinja2)."""
    sep = _arg("sep", args, kwargs, 0, "")
    sep = kwargs.pop("d", sep)
    return str(do_join(eval_ctx, value, sep, kwargs.pop("attribute", None)))


def split(value: Any, /, *args: Any, **kwargs: Any) -> list[str]:
    """``split(pat=",")``: the pieces of a string."""
    pat = _arg("pat", args, kwargs, 0, None)
    return str(value).split(pat) if pat is not None else str(value).split()


def _field(item: Any, attribute: str) -> Any:
    current = item
    for part in str(attribute).split("."):
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, (list, tuple)) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


def filter_(value: Iterable[Any], /, *args: Any, **kwargs: Any) -> list[Any]:
    """``filter(attribute="kind", value="x")``: items whose attribute equals the value (without
    ``value``: items whose attribute is set)."""
    attribute = _arg("attribute", args, kwargs, 0, _REQUIRED)
    wanted = _arg("value", args, kwargs, 1, _MISSING)
    if wanted is _MISSING:
        return [item for item in value if _field(item, attribute) is not None]
    return [item for item in value if _field(item, attribute) == wanted]


class TeraMap(dict[str, Any]):
    """A mapping a loop walks as Tera does, by (key, value): ``{% for k, v in m %}``."""

    def __iter__(self) -> Any:
        return iter(list(self.items()))


def group_by(value: Iterable[Any], /, *args: Any, **kwargs: Any) -> TeraMap:
    """``group_by(attribute="kind")``: items by the (text of the) attribute, in first-seen order;
    items without it are left out. Loops walk it by (key, items)."""
    attribute = _arg("attribute", args, kwargs, 0, _REQUIRED)
    groups = TeraMap()
    for item in value:
        key = _field(item, attribute)
        if key is not None:
            groups.setdefault(str(key), []).append(item)
    return groups


def sort_by(value: Iterable[Any], /, *args: Any, **kwargs: Any) -> list[Any]:
    """``sort_by("order")``: items sorted by an attribute, numbers numerically, missing last."""
    attribute = _arg("attribute", args, kwargs, 0, _REQUIRED)

    def key(item: Any) -> tuple[int, float, str]:
        field = _field(item, attribute)
        if field is None:
            return (2, 0.0, "")
        try:
            return (0, float(field), "")
        except (TypeError, ValueError):
            return (1, 0.0, str(field))

    return sorted(value, key=key)


def get(value: Any, /, *args: Any, **kwargs: Any) -> Any:
    """``get(key="k", default=x)``: a value of a mapping (an error when missing, without
    ``default``)."""
    key = _arg("key", args, kwargs, 0, _REQUIRED)
    fallback = _arg("default", args, kwargs, 1, _MISSING)
    if isinstance(value, Mapping) and key in value:
        return value[key]
    if fallback is not _MISSING:
        return fallback
    raise KeyError(f"get: no key {key!r}")


def _trim(
    value: Any, args: tuple[Any, ...], kwargs: dict[str, Any], *, start: bool, end: bool
) -> str:
    pat = _arg("pat", args, kwargs, 0, None)
    text = str(value)
    if pat is None:
        if start and end:
            return text.strip()
        return text.lstrip() if start else text.rstrip()
    pat = str(pat)
    if not pat:
        return text
    while start and text.startswith(pat):
        text = text[len(pat) :]
    while end and text.endswith(pat):
        text = text[: -len(pat)]
    return text


def trim_start(value: Any, /, *args: Any, **kwargs: Any) -> str:
    return _trim(value, args, kwargs, start=True, end=False)


def trim_end(value: Any, /, *args: Any, **kwargs: Any) -> str:
    return _trim(value, args, kwargs, start=False, end=True)


def trim_matches(value: Any, /, *args: Any, **kwargs: Any) -> str:
    """``trim_matches(pat='"')``: the string without that pattern repeated at both ends."""
    return _trim(value, args, kwargs, start=True, end=True)


def json_encode(value: Any, /, *args: Any, **kwargs: Any) -> str:
    """``json_encode(pretty=true)``: JSON text, keys sorted (as Tera's serde_json writes them)."""
    pretty = _arg("pretty", args, kwargs, 0, False)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, indent=2 if pretty else None)


def now_utc() -> datetime.datetime:
    """The render time: ``SOURCE_DATE_EPOCH`` when set (reproducible builds), else the clock."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    if epoch.isdigit():
        return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc)
    return datetime.datetime.now(datetime.timezone.utc)


def _as_datetime(value: Any) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    text = str(value).strip()
    if text.lower() == "now":
        return now_utc()
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"date: {text!r} is not a date, a timestamp or 'now'") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def date(value: Any, /, *args: Any, **kwargs: Any) -> str:
    """``date(format="%Y-%m-%d")`` of a timestamp, an ISO date or ``"now"``."""
    fmt = _arg("format", args, kwargs, 0, "%Y-%m-%d")
    return _as_datetime(value).strftime(str(fmt))


def now(*args: Any, **kwargs: Any) -> Any:
    """Tera's ``now(timestamp=false, utc=false)``: the render time (see :func:`now_utc`)."""
    moment = now_utc()
    if _arg("timestamp", args, kwargs, 0, False):
        return int(moment.timestamp())
    return moment.isoformat()


def addslashes(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"')


def slugify(value: Any) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", str(value).lower()))


def shouty_snake(value: Any) -> str:
    return snake(value).upper()


def as_str(value: Any) -> str:
    return json_encode(value) if isinstance(value, (list, dict)) else str(value)


def linebreaksbr(value: Any) -> str:
    return str(value).replace("\r\n", "<br>").replace("\n", "<br>")


def concat(value: Any, /, *args: Any, **kwargs: Any) -> list[Any]:
    other = _arg("with", args, kwargs, 0, _REQUIRED)
    extra = list(other) if isinstance(other, (list, tuple)) else [other]
    return [*list(value), *extra]


def nth(value: Any, /, *args: Any, **kwargs: Any) -> Any:
    index = int(_arg("n", args, kwargs, 0, _REQUIRED))
    items = list(value)
    return items[index] if 0 <= index < len(items) else Undefined(name=f"nth({index})")


FILTERS: dict[str, Callable[..., Any]] = {
    "default": default,
    "d": default,
    "split": split,
    "filter": filter_,
    "group_by": group_by,
    "sort_by": sort_by,
    "get": get,
    "trim_start": trim_start,
    "trim_end": trim_end,
    "trim_matches": trim_matches,
    "trim_start_matches": trim_start,
    "trim_end_matches": trim_end,
    "json_encode": json_encode,
    "date": date,
    "addslashes": addslashes,
    "slugify": slugify,
    "as_str": as_str,
    "linebreaksbr": linebreaksbr,
    "concat": concat,
    "nth": nth,
    "local": local_name,
    "lowercase": lambda value: str(value).lower(),
    "uppercase": lambda value: str(value).upper(),
    "snake_case": snake,
    "pascal_case": pascal,
    "camel_case": camel,
    "kebab_case": kebab,
    "shouty_snake_case": shouty_snake,
    "upper_camel_case": pascal,
    "lower_camel_case": camel,
}

#: Filters that need Jinja2's evaluation context (``pass_eval_context``).
EVAL_CONTEXT_FILTERS: dict[str, Callable[..., Any]] = {"replace": replace, "join": join}


def _starting_with(value: Any, prefix: Any) -> bool:
    return str(value).startswith(str(prefix))


def _ending_with(value: Any, suffix: Any) -> bool:
    return str(value).endswith(str(suffix))


def _containing(value: Any, needle: Any) -> bool:
    return needle in value if not isinstance(value, str) else str(needle) in value


def _matching(value: Any, pattern: Any) -> bool:
    return re.search(str(pattern), str(value)) is not None


TESTS: dict[str, Callable[..., bool]] = {
    "starting_with": _starting_with,
    "ending_with": _ending_with,
    "containing": _containing,
    "matching": _matching,
    "object": lambda value: isinstance(value, Mapping),
}


class TemplateThrow(Exception):  # noqa: N818 - named after Tera's throw()
    """Raised by Tera's ``throw(message=...)``."""


def functions(safe_range: Callable[..., Any]) -> dict[str, Callable[..., Any]]:
    """Tera's global functions; ``range`` keeps the sandbox's size limit."""

    def range_(*args: Any, **kwargs: Any) -> Any:
        if not kwargs:
            return safe_range(*args)
        end = _arg("end", args, kwargs, 0, _REQUIRED)
        return safe_range(int(kwargs.pop("start", 0)), int(end), int(kwargs.pop("step_by", 1)))

    def throw(*args: Any, **kwargs: Any) -> None:
        raise TemplateThrow(str(_arg("message", args, kwargs, 0, "throw() called")))

    def get_env(*args: Any, **kwargs: Any) -> Any:
        name = _arg("name", args, kwargs, 0, _REQUIRED)
        fallback = _arg("default", args, kwargs, 1, _MISSING)
        if fallback is _MISSING:
            raise TemplateThrow(
                f"get_env(name={name!r}): templates do not read the environment; give a"
                " default= or pass the value with --var"
            )
        return fallback

    return {"range": range_, "now": now, "throw": throw, "get_env": get_env}
