"""Graphs and SPARQL for templates, with rdflib; nothing here reaches the network.

Only text formats are read (Turtle, N-Triples, N3, TriG, N-Quads): formats such as JSON-LD can
fetch remote contexts. Queries must be SELECT queries without ``SERVICE`` or ``FROM`` clauses, which
would make rdflib fetch remote data. Rows are plain dicts of strings (``None`` when unbound), sorted
unless the query has ``ORDER BY``, so output does not depend on hash order.
"""

from __future__ import annotations

import re
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


def load_graph(files: list[Path], *, base: str | None = None) -> Any:
    """An rdflib ``Dataset``-free ``Graph`` with every file parsed into it."""
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
            graph.parse(data=data, format=fmt, publicID=base or f"urn:ggen:graph:{path.name}")
        except Exception as exc:  # rdflib raises many kinds of parser errors
            raise RdfError(f"{path}: not valid {fmt}: {_one_line(exc)}") from None
    return graph


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
    """Run a SELECT query; rows as dicts of strings."""
    query = prepare(text, prefixes, label)
    try:
        result = graph.query(query)
        names = [str(v) for v in result.vars or []]
        rows: list[Row] = [
            {
                name: (None if value is None else str(value))
                for name, value in zip(names, row, strict=True)
            }
            for row in result
        ]
    except Exception as exc:
        raise RdfError(f"{label}: SPARQL query failed: {_one_line(exc)}") from None
    if not _ORDER_BY.search(text):
        rows.sort(key=lambda r: [(v is None, v or "") for v in r.values()])
    return rows
