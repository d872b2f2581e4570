"""What a template's body sees of its graph: query rows, ggen's names for them, SPARQL functions.

The graph is the template's ``rdf:`` files (looked up beside the template first, then at the
gpack's root; never outside the gpack), or the gpack's own ``[rdf]`` files when it names none,
plus its ``rdf_inline`` Turtle. Each named query's rows are ``sparql.<name>``, as ggen binds
them also ``sparql_results.<name>`` and, unless a variable has that name, ``<name>`` itself;
``results`` is the first query's rows. ``sparql(query=...)``, ``sparql_first(results=,
column=)`` and ``sparql_count(results=)`` query or summarise at render time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import TemplateError
from ..manifest import matching_files
from .rdf import Row, load_graph, select

if TYPE_CHECKING:
    from .frontmatter import TemplateSource
    from .generate import GpackTemplate

QUERY_SUFFIXES = (".rq", ".sparql")
#: Names under which the rows of all queries are bound (``sparql`` is this project's own).
RESULT_MAPS = ("sparql", "sparql_results")


def gpack_file(template: GpackTemplate, entry: str, key: str) -> Path:
    """``entry`` of a front-matter ``key``: beside the template, else at the gpack root."""
    root = template.root.resolve()
    for base in (template.path.parent, template.root):
        path = (base / entry).resolve()
        if path.is_relative_to(root) and path.is_file():
            return path
    raise TemplateError(
        f"{template.path}: front matter: {key}: no file {entry!r} beside the template or in"
        " the gpack"
    )


def _query_text(template: GpackTemplate, name: str, value: str) -> tuple[str, str]:
    """(query text, label): ``value`` is a query file of the gpack or the query itself."""
    if "\n" not in value and value.strip().endswith(QUERY_SUFFIXES):
        path = gpack_file(template, value.strip(), f"sparql.{name}")
        return path.read_text(encoding="utf-8"), f"{path} (query {name!r})"
    return value, f"{template.path}: front matter: sparql.{name}"


def _identity(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path), stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=8)
def _shared_graph(files: tuple[tuple[str, int, int], ...], base: str | None) -> Any:
    """One parse of the same unchanged files for every template that reads them (queries do
    not change a graph; a template with ``rdf_inline`` gets a graph of its own)."""
    return load_graph([Path(name) for name, _, _ in files], base=base)


class QueryResults(dict[str, list[Row]]):
    """The rows of every query by name, and callable as ggen's ``sparql(query="SELECT ...")``.

    The query function is kept in an underscore attribute, which the sandbox never lets a
    template read; templates only call it and get rows (plain dicts of strings) back.
    """

    def __init__(self, rows: dict[str, list[Row]], run: Callable[[str], list[Row]]) -> None:
        super().__init__(rows)
        self._run = run

    def __call__(self, query: str = "", **kwargs: Any) -> list[Row]:
        return self._run(query or str(kwargs.get("q", "")))


def _inline_turtle(prefixes: dict[str, str], text: str) -> str:
    declared = "".join(f"@prefix {p}: <{iri}> .\n" for p, iri in prefixes.items())
    return declared + text


@dataclass
class TemplateData:
    """The graph and query rows of one template, and the functions that query the graph."""

    template: GpackTemplate
    source: TemplateSource
    graph: Any = None
    prefixes: dict[str, str] = field(default_factory=dict)
    results: dict[str, list[Row]] = field(default_factory=dict)

    @classmethod
    def load(cls, template: GpackTemplate, source: TemplateSource) -> TemplateData:
        """Run the front matter's queries; the graph is loaded only when something reads it."""
        front = source.front
        data = cls(template, source)
        data.prefixes = {**template.manifest.rdf.prefixes, **front.prefixes}
        if front.rdf or front.rdf_inline:
            data.load_graph()  # a graph the template names must parse, queried or not
        for name, value in front.sparql.items():
            text, label = _query_text(template, name, value)
            data.results[name] = select(data.load_graph(), text, data.query_prefixes(), label)
        return data

    def load_graph(self) -> Any:
        """The template's graph (see the module doc), parsed once."""
        if self.graph is None:
            template, front = self.template, self.source.front
            rdf = template.manifest.rdf
            if front.rdf:
                files = [gpack_file(template, entry, "rdf") for entry in front.rdf]
            else:
                files = [p.resolve() for p in matching_files(template.root, list(rdf.patterns))]
            base = front.base or rdf.base
            if front.rdf_inline:
                inline = [_inline_turtle(self.prefixes, text) for text in front.rdf_inline]
                label = f"{template.path}: front matter: rdf_inline"
                self.graph = load_graph(files, base=base, inline=inline, label=label)
            else:
                self.graph = _shared_graph(tuple(_identity(f) for f in files), base)
        return self.graph

    def bind(self, context: dict[str, Any]) -> None:
        """Add the rows and the SPARQL functions to ``context`` (variables keep their names)."""
        for name in RESULT_MAPS:
            context.setdefault(name, QueryResults(self.results, self.query))
        for name, rows in self.results.items():
            context.setdefault(name, rows)
        if self.results:
            context.setdefault("results", next(iter(self.results.values())))
        context.update(self.functions())

    def functions(self) -> dict[str, Callable[..., Any]]:
        first: list[Row] = next(iter(self.results.values()), [])

        def rows_of(given: dict[str, Any]) -> list[Row]:
            """The rows passed as ``results=`` (or under any other name), else the first query's."""
            rows = given.pop("results", None)
            if rows is None and given:
                rows = given.pop(next(iter(given)))
            return first if rows is None else list(rows)

        def sparql_first(results: Any = None, column: str | None = None, **given: Any) -> Any:
            rows = rows_of({"results": results, **given} if results is not None else given)
            if not rows:
                return None
            row = rows[0]
            if column is None:
                return row
            return row.get(column.lstrip("?")) if isinstance(row, dict) else None

        def sparql_count(results: Any = None, **given: Any) -> int:
            return len(rows_of({"results": results, **given} if results is not None else given))

        return {"sparql_first": sparql_first, "sparql_count": sparql_count}

    def query(self, text: str) -> list[Row]:
        """Rows of a SELECT query run at render time (``sparql(query=...)``)."""
        graph = self.load_graph()
        return select(graph, text, self.query_prefixes(), f"{self.template.path}: sparql()")

    def query_prefixes(self) -> dict[str, str]:
        """Prefixes bound in queries: the graph files' own (as ggen binds them), then the
        gpack's ``[rdf.prefixes]`` and the front matter's ``prefixes``."""
        declared = {prefix: str(iri) for prefix, iri in self.load_graph().namespaces() if prefix}
        return {**declared, **self.prefixes}
