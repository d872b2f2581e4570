"""ggen's package manifests (``package.toml``, ggen's ``gpack.toml``) as this marketplace's.

Every difference between what the ggen file says and what the ``gpack.toml`` written says is a
:class:`Change`; what cannot be carried over at all is a problem (the package is refused).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..ids import check_id
from ..manifest import check_pattern
from ..versions import parse_range, parse_version

#: The first version of this tool whose templates render ggen's (Tera) templates: an imported
#: gpack's ``ggen_compat`` names it, since the upstream range names upstream ggen's versions.
COMPAT_SINCE = "0.1.0"

TEMPLATE_SUFFIXES = (".tmpl", ".tera")

#: ggen tables whose content is commands or file copies ggen runs itself.
_COMMAND_TABLES = {"scripts", "hooks", "generation", "install", "installation", "files"}
#: Tables of ggen's gpack.toml this marketplace reads (the others are reported as left out).
_GPACK_TABLES = {"gpack", "dependencies", "templates", "rdf", "queries"}
_SLUG_OUT = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Change:
    """One difference between the ggen manifest and the ``gpack.toml`` written for it.

    ``before`` is what the ggen file said (``None``: absent), ``after`` what was written
    (``None``: left out).
    """

    field: str
    before: Any
    after: Any
    reason: str

    def __str__(self) -> str:
        was = "(absent)" if self.before is None else _cut(repr(self.before))
        now = "left out" if self.after is None else _cut(repr(self.after))
        return f"{self.field}: {was} -> {now} ({self.reason})"

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "before": _plain(self.before),
            "after": _plain(self.after),
            "why": self.reason,
        }


class Note(str):
    """A description standing for a value (``a table``), shown without quotes."""

    def __repr__(self) -> str:
        return str(self)


def _plain(value: Any) -> Any:
    """``value`` with TOML dates and times as strings (for JSON)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _cut(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass
class Conversion:
    """The ``gpack.toml`` data for one ggen package, how it differs, and what blocks it."""

    source: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: Files the import adds to the gpack (relative path -> text), e.g. ``[rdf] inline`` graphs.
    added_files: dict[str, str] = field(default_factory=dict)

    def change(self, where: str, before: Any, after: Any, reason: str) -> None:
        self.changes.append(Change(where, before, after, reason))


def slug(text: str) -> str:
    """``'Enterprise Tools'`` -> ``'enterprise-tools'`` (a category or tag here)."""
    return _SLUG_OUT.sub("-", text.lower()).strip("-")


def derived_id(name: str, prefix: str) -> str:
    """The id of a ggen package that has none: ``PREFIX.<name as a slug>``."""
    return f"{prefix}.{slug(name)}"


def package_id(data: dict[str, Any], prefix: str) -> str | None:
    """The id a ggen manifest's package gets here (``None`` when it has no usable name)."""
    info = data.get("gpack") if isinstance(data.get("gpack"), dict) else data.get("package")
    if not isinstance(info, dict):
        return None
    if isinstance(info.get("id"), str):
        return str(info["id"])
    name = info.get("name")
    return derived_id(name, prefix) if isinstance(name, str) and slug(name) else None


@dataclass(frozen=True)
class PackageFiles:
    """A package's files (POSIX paths relative to it) and its templates without front matter."""

    files: list[str]
    body_only: frozenset[str] = frozenset()


def convert(
    data: dict[str, Any], source: Path, files: PackageFiles, *, prefix: str, known: dict[str, str]
) -> Conversion:
    """Convert the parsed ggen manifest ``data`` read from ``source``.

    ``known`` maps the names of the packages imported together to their ids (so a dependency on
    one of them is kept).
    """
    conv = Conversion(source)
    if isinstance(data.get("gpack"), dict):
        _from_gpack(conv, data, prefix)
    elif isinstance(data.get("package"), dict):
        _from_package(conv, data, files, prefix, known)
    else:
        conv.problems.append(
            "no [package] or [gpack] table: not a ggen package manifest"
            " (ggen's package.toml has [package] name and version)"
        )
    return conv


# -- shared identity --------------------------------------------------------------------------


def _identity(conv: Conversion, info: dict[str, Any], table: str, prefix: str) -> dict[str, Any]:
    name = info.get("name")
    if not isinstance(name, str) or not name.strip():
        conv.problems.append(f"[{table}] name: required (a non-empty string)")
        name = ""
    out: dict[str, Any] = {"id": _id(conv, info, table, name, prefix), "name": name}
    version = info.get("version")
    if version is None:
        conv.problems.append(f"[{table}] version: required (a semantic version, e.g. '1.2.3')")
    else:
        try:
            out["version"] = str(parse_version(version, what=f"[{table}] version"))
        except ValueError as exc:
            conv.problems.append(str(exc))
    for key in ("description", "license", "homepage"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            out[key] = value
        else:
            conv.problems.append(f"[{table}] {key}: must be a string, got {value!r}")
    return out


def _id(conv: Conversion, info: dict[str, Any], table: str, name: str, prefix: str) -> str:
    given = info.get("id")
    if given is not None:
        try:
            return check_id(given)
        except ValueError as exc:
            conv.problems.append(f"[{table}] id: {exc}")
            return ""
    made = derived_id(name, prefix) if slug(name) else ""
    try:
        check_id(made)
    except ValueError:
        if name:
            conv.problems.append(
                f"[{table}] has no id and name {name!r} makes none: add an id such as"
                f" '{prefix}.my-pack' (or pass --id-prefix)"
            )
        return ""
    conv.change(f"[{table}] id", None, made, f"ggen's file has no id: --id-prefix {prefix} + name")
    return made


# -- ggen's gpack.toml ([gpack], [templates] patterns, [rdf], [queries]) ----------------------


def _from_gpack(conv: Conversion, data: dict[str, Any], prefix: str) -> None:
    info = data["gpack"]
    gpack = _identity(conv, info, "gpack", prefix)
    for key in sorted(set(info) - {"id", "name", "version", "description", "license", "homepage"}):
        if key == "ggen_compat":
            _compat(conv, gpack, info[key], "[gpack] ggen_compat")
        elif key in ("authors", "tags", "keywords", "category"):
            gpack[key] = info[key]
        else:
            conv.change(f"[gpack] {key}", info[key], None, "no such key here")
    manifest: dict[str, Any] = {"gpack": gpack}
    deps = data.get("dependencies") or {}
    if not isinstance(deps, dict):
        conv.problems.append("[dependencies]: must be a table of id = range")
        deps = {}
    manifest["dependencies"] = {
        dep: rng
        for dep, spec in deps.items()
        if (rng := _gpack_dependency(conv, dep, spec, f'[dependencies] "{dep}"')) is not None
    }
    _patterns(conv, data, manifest, "templates", {"includes"})
    _patterns(conv, data, manifest, "queries", {"aliases"})
    _rdf(conv, data, manifest)
    for table in sorted(set(data) - _GPACK_TABLES):
        conv.changes.append(Change(f"[{table}]", Note("a table"), None, _left_out_reason(table)))
    conv.manifest = manifest


def _patterns(
    conv: Conversion, data: dict[str, Any], manifest: dict[str, Any], table: str, extra: set[str]
) -> None:
    section = data.get(table)
    if section is None:
        return
    if not isinstance(section, dict):
        conv.problems.append(f"[{table}]: must be a table")
        return
    out: dict[str, Any] = {}
    patterns = section.get("patterns")
    if patterns is not None:
        out["patterns"] = _checked_patterns(conv, table, patterns)
    for key in sorted(set(section) - {"patterns"}):
        value = section[key]
        if key in extra and not value:
            continue  # an empty list or table means nothing
        why = (
            "templates include files by their path in the gpack here"
            if key == "includes"
            else "queries are named by their file here"
            if key == "aliases"
            else "no such key here"
        )
        conv.change(f"[{table}] {key}", value, None, why)
    manifest[table] = out


def _checked_patterns(conv: Conversion, table: str, patterns: Any) -> list[str]:
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        conv.problems.append(f"[{table}] patterns: must be a list of strings")
        return []
    good = []
    for pattern in patterns:
        try:
            good.append(check_pattern(pattern))
        except ValueError as exc:
            conv.problems.append(f"[{table}] patterns: {exc}")
    return good


def _rdf(conv: Conversion, data: dict[str, Any], manifest: dict[str, Any]) -> None:
    section = data.get("rdf")
    if section is None:
        return
    if not isinstance(section, dict):
        conv.problems.append("[rdf]: must be a table")
        return
    rdf: dict[str, Any] = {}
    if "patterns" in section:
        rdf["patterns"] = _checked_patterns(conv, "rdf", section["patterns"])
    prefixes = section.get("prefixes", {})
    if isinstance(prefixes, dict) and all(isinstance(v, str) for v in prefixes.values()):
        rdf["prefixes"] = dict(prefixes)
    else:
        conv.problems.append("[rdf] prefixes: must be a table of prefix = IRI strings")
    if isinstance(section.get("base"), str):
        rdf["base"] = section["base"]
    _inline_graphs(conv, section.get("inline") or [], rdf)
    for key in sorted(set(section) - {"patterns", "prefixes", "base", "inline"}):
        conv.change(f"[rdf] {key}", section[key], None, "no such key here")
    manifest["rdf"] = rdf


def _inline_graphs(conv: Conversion, inline: Any, rdf: dict[str, Any]) -> None:
    """ggen's ``[rdf] inline`` Turtle snippets become files of the gpack (with its prefixes)."""
    if not isinstance(inline, list) or not all(isinstance(s, str) for s in inline):
        conv.problems.append("[rdf] inline: must be a list of Turtle strings")
        return
    header = "".join(f"@prefix {p}: <{iri}> .\n" for p, iri in rdf.get("prefixes", {}).items())
    for index, text in enumerate(inline):
        name = f"rdf/ggen-inline-{index}.ttl"
        conv.added_files[name] = header + text + "\n"
        rdf.setdefault("patterns", []).append(name)
        conv.change(
            f"[rdf] inline #{index + 1}", Note("Turtle"), name, "inline graphs are files here"
        )


# -- ggen's package.toml ([package] and free-form tables) -------------------------------------


def _from_package(
    conv: Conversion, data: dict[str, Any], files: PackageFiles, prefix: str, known: dict[str, str]
) -> None:
    info = data["package"]
    gpack = _identity(conv, info, "package", prefix)
    _people(conv, info, gpack)
    _classification(conv, info, gpack)
    _homepage(conv, info, gpack)
    manifest: dict[str, Any] = {"gpack": gpack}
    manifest["dependencies"] = _package_dependencies(conv, data, info, known, gpack, prefix)
    _found_files(conv, manifest, files)
    used = {"name", "id", "version", "description", "license", "homepage", "author", "authors"}
    used |= {"category", "categories", "tags", "keywords", "repository", "documentation"}
    used |= {"dependencies"}
    for key in sorted(set(info) - used):
        conv.change(f"[package] {key}", info[key], None, "ggen metadata with no meaning here")
    for table in sorted(set(data) - {"package", "dependencies", "validation"}):
        conv.changes.append(Change(f"[{table}]", Note("a table"), None, _left_out_reason(table)))
    conv.manifest = manifest


def _left_out_reason(table: str) -> str:
    if table in _COMMAND_TABLES:
        return (
            "ggen runs commands or copies files from it; here a gpack runs no commands and"
            " its templates are rendered by `ggen template generate`"
        )
    if table == "preset":
        return "preset variables are not applied here: pass them with --var"
    if table == "shapes":
        return "SHACL shapes are not checked here; the files are kept"
    if table == "variables":
        return "variables are declared by each template's front matter here and given with --var"
    if table in ("templates", "ontology", "sparql", "queries"):
        return "the gpack's files are found by the patterns written instead"
    return "ggen metadata with no meaning here"


def _people(conv: Conversion, info: dict[str, Any], gpack: dict[str, Any]) -> None:
    authors = info.get("authors")
    author = info.get("author")
    if isinstance(authors, list) and all(isinstance(a, str) for a in authors):
        gpack["authors"] = list(authors)
    elif authors is not None:
        conv.problems.append(f"[package] authors: must be a list of strings, got {authors!r}")
    if isinstance(author, str):
        if author not in gpack.setdefault("authors", []):
            gpack["authors"].insert(0, author)
        conv.change("[package] author", author, gpack["authors"], "written as [gpack] authors")
    elif author is not None:
        conv.problems.append(f"[package] author: must be a string, got {author!r}")


def _words(conv: Conversion, where: str, value: Any) -> list[str]:
    """A list of strings; ggen also writes tables of lists (``tags = { primary = [...] }``)."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, dict):
        words = [
            str(w) for v in value.values() if isinstance(v, list) for w in v if isinstance(w, str)
        ]
        words += [str(k) for k, v in value.items() if v is True]
        conv.change(where, value, words, "a table of lists is one list here")
        return words
    conv.problems.append(f"{where}: must be a list of strings, got {value!r}")
    return []


def _classification(conv: Conversion, info: dict[str, Any], gpack: dict[str, Any]) -> None:
    tags = _words(conv, "[package] tags", info["tags"]) if "tags" in info else []
    categories: list[str] = []
    if isinstance(info.get("category"), str):
        categories.append(info["category"])
    elif "category" in info:
        conv.problems.append(f"[package] category: must be a string, got {info['category']!r}")
    if "categories" in info:
        categories += _words(conv, "[package] categories", info["categories"])
    if categories:
        first = slug(categories[0]) or "general"
        gpack["category"] = first
        if first != categories[0]:
            conv.change("[package] category", categories[0], first, "categories are slugs here")
        if len(categories) > 1:
            tags += categories[1:]
            conv.change(
                "[package] categories", categories, first, "one category here; the rest are tags"
            )
    slugs = []
    for tag in tags:
        made = slug(tag)
        if made and made not in slugs:
            slugs.append(made)
        if made != tag:
            conv.change("[package] tags", tag, made or None, "tags are slugs here")
    if slugs:
        gpack["tags"] = slugs
    if "keywords" in info:
        gpack["keywords"] = _words(conv, "[package] keywords", info["keywords"])


def _homepage(conv: Conversion, info: dict[str, Any], gpack: dict[str, Any]) -> None:
    if "homepage" in gpack:
        return
    for key in ("repository", "documentation"):
        value = info.get(key)
        if isinstance(value, str) and value:
            gpack["homepage"] = value
            conv.change(f"[package] {key}", value, value, "written as [gpack] homepage")
            return


def _package_dependencies(
    conv: Conversion,
    data: dict[str, Any],
    info: dict[str, Any],
    known: dict[str, str],
    gpack: dict[str, Any],
    prefix: str,
) -> dict[str, str]:
    out: dict[str, str] = {}
    listed = info.get("dependencies", [])
    if not isinstance(listed, list) or not all(isinstance(d, str) for d in listed):
        conv.problems.append("[package] dependencies: must be a list of package names")
        listed = []
    for name in listed:
        dep = known.get(name) or (name if _is_id(name) else derived_id(name, prefix))
        if not _is_id(dep):
            conv.problems.append(f"[package] dependencies: {name!r} makes no gpack id")
            continue
        out[dep] = "*"
        why = "a gpack dependency" + (
            "" if name in known or dep == name else " (not imported in this run: import it too)"
        )
        conv.change("[package] dependencies", name, {dep: "*"}, why)
    table = data.get("dependencies", {})
    if not isinstance(table, dict):
        conv.problems.append("[dependencies]: must be a table")
        return out
    crates = []
    for name, spec in table.items():
        where = f'[dependencies] "{name}"'
        if name in ("ggen", "ggen-core", "ggen-cli"):
            _compat(conv, gpack, spec if isinstance(spec, str) else "*", where)
        elif name in known:
            rng = _gpack_dependency(conv, known[name], spec, where)
            if rng is not None:
                out[known[name]] = rng
        else:
            crates.append(name)
    validation = data.get("validation")
    if isinstance(validation, dict) and isinstance(validation.get("min_ggen_version"), str):
        _compat(conv, gpack, ">=" + validation["min_ggen_version"], "[validation] min_ggen_version")
    if crates:
        conv.change(
            "[dependencies]",
            crates,
            None,
            "Rust crates of the generated code, not packages imported with this one",
        )
    return out


def _is_id(name: str) -> bool:
    try:
        check_id(name)
    except ValueError:
        return False
    return True


def _gpack_dependency(conv: Conversion, dep: str, spec: Any, where: str) -> str | None:
    """A dependency range in cargo's syntax (bare ``1.2`` means ``^1.2``), written for here."""
    if isinstance(spec, dict):
        spec = spec.get("version", "*")
    if not isinstance(spec, str):
        conv.problems.append(f"{where}: a version range string, got {spec!r}")
        return None
    if not _is_id(dep):
        conv.problems.append(f"{where}: {dep!r} is not a gpack id (e.g. 'io.ggen.rust.cli')")
        return None
    rng = cargo_range(spec)
    try:
        parse_range(rng, what=where)
    except ValueError as exc:
        conv.problems.append(str(exc))
        return None
    if rng != spec:
        conv.change(where, spec, rng, "cargo's bare version means ^version")
    return rng


def cargo_range(text: str) -> str:
    """cargo/ggen range syntax as written here: a bare ``1.2.3`` comparator is ``^1.2.3``."""
    parts = [p.strip() for p in text.split(",")]
    return ", ".join("^" + p if p[:1].isdigit() else p for p in parts if p) or "*"


def _compat(conv: Conversion, gpack: dict[str, Any], upstream: Any, where: str) -> None:
    after = f">={COMPAT_SINCE}"
    gpack["ggen_compat"] = after
    conv.change(
        where,
        upstream,
        after,
        "written as [gpack] ggen_compat: the range named upstream ggen's versions; here it"
        " names this tool's versions that render ggen's templates",
    )


def _found_files(conv: Conversion, manifest: dict[str, Any], found: PackageFiles) -> None:
    """A package.toml names no patterns: the gpack's templates, graphs and queries are its
    ``*.tmpl``/``*.tera``, ``*.ttl`` and ``*.rq`` files."""
    kinds = {"templates": TEMPLATE_SUFFIXES, "rdf": (".ttl",), "queries": (".rq",)}
    for table, suffixes in kinds.items():
        patterns = _patterns_for(f for f in found.files if f.endswith(suffixes))
        manifest[table] = {"patterns": patterns}
        if patterns:
            conv.change(f"[{table}] patterns", None, patterns, "the package's files")


def without_body_only(conv: Conversion, matched: list[str], body_only: frozenset[str]) -> None:
    """Templates without front matter take their output path from a ggen.toml rule in ggen;
    here they stay files of the gpack: the patterns become the list of the other templates."""
    skipped = [name for name in matched if name in body_only]
    if not skipped:
        return
    before = conv.manifest.setdefault("templates", {}).get("patterns")
    conv.manifest["templates"]["patterns"] = [name for name in matched if name not in body_only]
    conv.change(
        "[templates] patterns",
        before,
        conv.manifest["templates"]["patterns"],
        f"{len(skipped)} template(s) without front matter ({', '.join(skipped[:3])}"
        f"{', ...' if len(skipped) > 3 else ''}) are kept as files: ggen takes their output"
        " path from a ggen.toml rule; add a front matter with `to:` to make one a template",
    )


def _patterns_for(found: Iterable[str]) -> list[str]:
    """``**/*.SUFFIX`` for each suffix present (every file of that kind is meant)."""
    return [f"**/*{kind}" for kind in sorted({PurePosixPath(f).suffix for f in found})]
