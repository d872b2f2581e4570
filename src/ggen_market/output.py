"""What ``ggen market`` commands print: JSON documents, warnings, errors and change reports.

The click commands (:mod:`ggen_market.cli`) print through ``click.echo``; the click-free
``ggen market add`` (:mod:`ggen_market.add_command`) through :func:`plain_echo`. Both hand their
printer to the same functions here, so the two paths print the same lines.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .errors import MarketError

if TYPE_CHECKING:
    from .install import Change, Project


class Echo(Protocol):
    """``click.echo``'s signature, as far as these reports use it."""

    def __call__(self, message: str, *, err: bool = ...) -> None: ...


def plain_echo(message: str, *, err: bool = False) -> None:
    """Print a line to stdout (stderr with ``err``) and flush: ``click.echo`` for a UTF-8 stream."""
    stream = sys.stderr if err else sys.stdout
    stream.write(message + "\n")
    stream.flush()


def print_json(data: Any, echo: Echo) -> None:
    echo(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False))


def warn(messages: Iterable[str], echo: Echo) -> None:
    for message in messages:
        echo(f"warning: {message}", err=True)


def report_error(
    exc: MarketError | OSError,
    as_json: bool,
    echo: Echo,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """``error: ...`` on stderr (and ``{ok: false, error, kind}`` on stdout with ``--json``,
    with ``extra``'s fields: what the command did before it failed).

    An OSError is a file or directory the command needs that cannot be read or written.
    """
    message = str(exc) if isinstance(exc, MarketError) else f"{exc.strerror}: {exc.filename}"
    if as_json:
        print_json(
            {"ok": False, "error": message, "kind": type(exc).__name__, **(extra or {})}, echo
        )
    echo(f"error: {message}", err=True)


def report_change(change: Change, proj: Project, as_json: bool, verb: str, echo: Echo) -> None:
    """What ``add``, ``remove`` and ``update`` changed (``verb`` names the no-op case)."""
    warnings = proj.catalog.warnings if proj._catalog is not None else []
    warn(warnings, echo)
    if as_json:
        print_json(
            {"ok": True, **change.to_json(), "lockfile": str(proj.lock_path), "warnings": warnings},
            echo,
        )
        return
    if change.nothing_pinned:
        echo(
            f"nothing pinned: {proj.lock_path} does not exist, so there is nothing to {verb}"
            " (add a gpack with `ggen market add ID`)"
        )
        return
    for pkg in change.removed:
        echo(f"- {pkg.id}@{pkg.version}")
    for pkg in change.added:
        echo(f"+ {pkg.id}@{pkg.version}  sha256:{pkg.sha256}")
    for pkg in change.repaired:
        echo(f"~ {pkg.id}@{pkg.version}  reinstalled (was missing or modified)")
    if not (change.added or change.removed or change.repaired):
        echo(f"nothing to {verb}: {len(change.kept)} gpack(s) already as ggen.lock pins")
