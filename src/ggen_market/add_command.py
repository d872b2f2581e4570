"""``ggen market add`` without click: the command's work, and a parser for its plain command lines.

Start-up is most of what ``add`` costs (benchmarks/bench_market.py), and importing click and
building the ``market`` group are a good part of it. ``ggen`` (``ggen_cli.__main__``) therefore
hands ``market add ...`` to :func:`main_without_click` first. It handles only command lines it
fully understands, printing to UTF-8 streams; for anything else (``--help``, a bad value, an
unknown option, ``--``) it returns ``None`` and click parses and reports exactly as before.
The click command (:mod:`ggen_market.cli`) calls the same :func:`run_add`, so both paths
install and print alike; tests/unit/market/test_add_command.py compares the two parsers.
"""

from __future__ import annotations

import codecs
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from .errors import MarketError
from .output import Echo, plain_echo, report_change, report_error
from .sources import Sources

# The options of the click command, by the name of its parameter.
_VALUED = {"--registry": "registries", "--project": "project", "--timeout": "timeout"}
_FLAGS = {
    "--offline": ("offline", True),
    "--json": ("as_json", True),
    "--progress": ("progress", True),
    "--no-progress": ("progress", False),
    "--allow-fallback": ("allow_fallback", True),
    "--require-validated": ("require_validated", True),
}


class AddArgs(NamedTuple):
    """A parsed ``market add`` command line."""

    specs: list[str]
    sources: Sources
    as_json: bool


def run_add(specs: list[str], sources: Sources, as_json: bool, echo: Echo) -> None:
    """Install ``specs`` (none: what ggen.lock pins) and report the change through ``echo``."""
    proj = sources.open_project()
    change = proj.add(specs)
    report_change(change, proj, as_json, "install", echo)


def _convert(param: str, value: str) -> Any:
    """``value`` as click would convert it for ``param``; ``None`` when click would refuse it."""
    if param == "timeout":
        try:
            return float(value)
        except ValueError:
            return None
    if param == "project":  # click.Path(file_okay=False): an existing path is a readable dir
        if not value or (os.path.exists(value) and not os.path.isdir(value)):
            return None
        if os.path.exists(value) and not os.access(value, os.R_OK):
            return None
        return Path(value)
    return value


def parse_add_argv(argv: Sequence[str]) -> AddArgs | None:
    """The arguments after ``market add`` as :class:`AddArgs`; ``None`` unless every argument is
    one this parser knows and every value is valid (click reports the rest)."""
    rest = list(argv)
    specs: list[str] = []
    registries: list[str] = []
    values: dict[str, Any] = {"project": Path("."), "timeout": None}
    flags: dict[str, bool | None] = {
        "offline": False,
        "as_json": False,
        "progress": None,
        "allow_fallback": False,
        "require_validated": False,
    }
    while rest:
        item = rest.pop(0)
        if item in _FLAGS:
            name, flag = _FLAGS[item]
            flags[name] = flag
            continue
        if not item.startswith("-"):
            specs.append(item)
            continue
        option, eq, inline = item.partition("=")
        if option not in _VALUED:
            return None  # --help, --, unknown options: click's job
        if eq:
            raw = inline
        elif rest and not rest[0].startswith("-"):
            raw = rest.pop(0)
        else:
            return None  # a missing value, or one click would have to interpret
        value = _convert(_VALUED[option], raw)
        if value is None:
            return None
        if option == "--registry":
            registries.append(value)
        else:
            values[_VALUED[option]] = value
    sources = Sources(
        project=values["project"],
        registries=tuple(registries),
        offline=bool(flags["offline"]),
        timeout=values["timeout"],
        progress=flags["progress"],
        allow_fallback=bool(flags["allow_fallback"]),
        require_validated=bool(flags["require_validated"]),
    )
    return AddArgs(specs, sources, bool(flags["as_json"]))


def _utf8(stream: Any) -> bool:
    encoding = getattr(stream, "encoding", None)
    try:
        return encoding is not None and codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def _import_install_modules() -> None:
    """Import what installing needs (pydantic and the manifest model among it) with the cyclic
    garbage collector paused, then set what they made aside (:func:`gc.freeze`): modules,
    classes and validators live until the process ends, and collecting them, during the
    imports or after, finds nothing but costs several milliseconds."""
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        from . import builder, install  # noqa: F401
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def main_without_click(argv: Sequence[str]) -> int | None:
    """Run ``ggen market add ARGV`` if :func:`parse_add_argv` understands it; else ``None``."""
    args = parse_add_argv(argv)
    if args is None or not (_utf8(sys.stdout) and _utf8(sys.stderr)):
        return None  # click.echo handles streams of other encodings its own way
    try:
        _import_install_modules()
        run_add(args.specs, args.sources, args.as_json, plain_echo)
    except (MarketError, OSError) as exc:
        report_error(exc, args.as_json, plain_echo)
        return 1
    except KeyboardInterrupt:
        plain_echo("", err=True)
        plain_echo("Aborted!", err=True)  # what click prints
        return 1
    return 0
