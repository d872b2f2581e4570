"""Graphs and SPARQL for templates, with rdflib; nothing here reaches the network.

Only text formats are read (Turtle, N-Triples, N3, TriG, N-Quads): formats such as JSON-LD can
fetch remote contexts. Queries must be SELECT queries without ``SERVICE`` or ``FROM`` clauses, which
would make rdflib fetch remote data. Rows are plain dicts of strings (``None`` when unbound), sorted
unless the query has ``ORDER BY``, so output does not depend on hash order.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import RdfError

FORMATS = {
    ".ttl": "turtle",
    ".turtle": "turtle",
    ".nt": "nt",
    ".n3": "n3",
    ".trig": "trig",
    ".nq": "nquads",
}
_ORDER_BY = re.compile(r"\bORDER\s+BY\b", re.IGNORECASE)

Row = dict[str, "str | None"]


def load_graph(
    files: list[Path],
    *,
    base: str | None = None,
    inline: list[str] | None = None,
    label: str = "inline Turtle",
) -> Any:
    """An rdflib ``Dataset``-free ``Graph`` with every file (and ``inline`` Turtle text) parsed
    into it; errors name the file, or ``label`` for inline text."""
    import rdflib

    graph = rdflib.Graph()
    for path in files:
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise RdfError(
                f"{path}: unsupported RDF format {path.suffix!r}; use one of"
                f" {', '.join(sorted(FORMATS))}"
            )
        try:
            data = path.read_text(encoding="utf-8")
            # A fixed base: relative IRIs must not depend on where the gpack is installed.
            with _quiet_rdflib():
                graph.parse(data=data, format=fmt, publicID=base or f"urn:ggen:graph:{path.name}")
        except Exception as exc:  # rdflib raises many kinds of parser errors
            raise RdfError(f"{path}: not valid {fmt}: {_one_line(exc)}") from None
    for index, text in enumerate(inline or []):
        try:
            with _quiet_rdflib():
                graph.parse(data=text, format="turtle", publicID=base or "urn:ggen:graph:inline")
        except Exception as exc:  # rdflib raises many kinds of parser errors
            raise RdfError(f"{label}[{index}]: not valid turtle: {_one_line(exc)}") from None
    return graph


class _NoTraceback(logging.Filter):
    """rdflib logs a warning *with a traceback* for each literal whose lexical form does not fit
    its datatype (``"abc"^^xsd:integer``) and keeps the literal: one line is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


@contextlib.contextmanager
def _quiet_rdflib() -> Iterator[None]:
    logger = logging.getLogger("rdflib.term")
    quiet = _NoTraceback()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:400] + ("…" if len(text) > 400 else "")


def _refuse_remote(node: Any, label: str) -> None:
    from rdflib.plugins.sparql.parserutils import CompValue

    if isinstance(node, CompValue):
        if node.name == "ServiceGraphPattern":
            raise RdfError(f"{label}: SERVICE clauses are not allowed (they fetch remote data)")
        if node.name == "DatasetClause":
            raise RdfError(f"{label}: FROM clauses are not allowed (they load remote graphs)")
        for value in node.values():
            _refuse_remote(value, label)
    elif isinstance(node, (list, tuple)):
        for item in node:
            _refuse_remote(item, label)


def prepare(text: str, prefixes: dict[str, str], label: str) -> Any:
    """Parse a SELECT query (syntax errors become :class:`RdfError` naming ``label``)."""
    import rdflib.plugins.sparql as sparql
    from rdflib.plugins.sparql import prepareQuery

    sparql.SPARQL_LOAD_GRAPHS = False
    try:
        query = prepareQuery(text, initNs=prefixes)
    except Exception as exc:  # pyparsing and rdflib errors
        raise RdfError(f"{label}: SPARQL syntax error: {_one_line(exc)}") from None
    if query.algebra.name != "SelectQuery":
        raise RdfError(f"{label}: only SELECT queries can feed a template")
    _refuse_remote(query.algebra, label)
    return query


def select(graph: Any, text: str, prefixes: dict[str, str], label: str) -> list[Row]:
    """Run a SELECT query; rows as dicts of strings.

    Bounded: past ``GGEN_SPARQL_TIMEOUT`` seconds or ``GGEN_SPARQL_MAX_ROWS`` rows (a Cartesian
    product of a graph with itself) it is an :class:`RdfError`."""
    from .limits import RenderLimitError, sparql_limits, time_limit

    query = prepare(text, prefixes, label)
    seconds, max_rows = sparql_limits()
    deadline = time.monotonic() + seconds

    def too_slow() -> str:
        return f"took longer than {seconds:g} s (GGEN_SPARQL_TIMEOUT raises the limit)"

    rows: list[Row] = []
    try:
        with time_limit(seconds, too_slow), _quiet_rdflib():
            result = graph.query(query)
            names = [str(v) for v in result.vars or []]
            for row in result:
                if len(rows) >= max_rows:
                    raise RenderLimitError(
                        f"more than {max_rows} rows (GGEN_SPARQL_MAX_ROWS raises the limit)"
                    )
                if time.monotonic() > deadline:
                    raise RenderLimitError(too_slow())
                rows.append(
                    {
                        name: (None if value is None else str(value))
                        for name, value in zip(names, row, strict=True)
                    }
                )
    except RenderLimitError as exc:
        raise RdfError(f"{label}: SPARQL query {exc}") from None
    except Exception as exc:
        if time.monotonic() >= deadline:  # the limit fired inside rdflib, which wrapped it
            raise RdfError(f"{label}: SPARQL query {too_slow()}") from None
        raise RdfError(f"{label}: SPARQL query failed: {_one_line(exc)}") from None
    if not _ORDER_BY.search(text):
        rows.sort(key=lambda r: [(v is None, v or "") for v in r.values()])
    return rows
