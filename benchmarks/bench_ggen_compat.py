"""How much of ggen's own material works here unchanged: make.toml files and Tera templates.

    .venv/bin/python benchmarks/bench_ggen_compat.py [--corpus DIR] [--json] [--show N]

The corpus is a copy of the public ggen project's example files, kept beside the project in
``../shared/corpus/ggen`` (``GGEN_COMPAT_CORPUS`` overrides it); it is read, never copied.

* make.toml: files of ggen's lifecycle format (``[lifecycle]`` phases; cargo-make's ``[tasks]``
  files are another tool's) are checked against ggen's own model, as ggen's loader reads them
  (serde: ``[project] name`` required, typed phase keys, every phase has a command, unknown
  tables ignored). Each file is copied with the workspace directories it names into a temporary
  project, loaded and dry-run (every declared phase).
* packages: every folder with a ``package.toml`` or ``gpack.toml`` is imported as
  ``ggen market import --dry-run`` does (converted, copied, checked as a gpack).
* templates: every ``*.tmpl`` is rendered (nothing written) the way ``ggen template generate``
  renders a gpack's template. Its gpack is the nearest folder above it with a ``*.ttl`` graph.
  Templates without a front matter (``body only``) get their output path and query from a
  ``ggen.toml`` generation rule that the corpus does not hold, and are counted apart. A
  template's data is present when the graph its queries read exists and every variable it
  uses is defined by the template or its queries; templates needing ``--var`` values the corpus
  does not give, or graph, query or injected files the corpus does not hold, are counted apart.

Prints a table and the first error by kind; ``--json`` prints the numbers for the test that
asserts the goals (tests/integration/compat/test_ggen_corpus.py).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS_ENV = "GGEN_COMPAT_CORPUS"
HOOK_LISTS = {
    f"{when}_{phase}"
    for when in ("before", "after")
    for phase in ("all", "init", "setup", "build", "test", "deploy")
}


def corpus_dir(given: str | None = None) -> Path:
    """The corpus: ``--corpus``, else ``$GGEN_COMPAT_CORPUS``, else ``../shared/corpus/ggen``."""
    if given:
        return Path(given)
    if os.environ.get(CORPUS_ENV):
        return Path(os.environ[CORPUS_ENV])
    return ROOT.parent / "shared" / "corpus" / "ggen"


# -- make.toml ----------------------------------------------------------------------------------


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def ggen_refuses(data: dict[str, Any]) -> str | None:
    """Why ggen's own loader (serde model of ggen-core ``lifecycle/model.rs``) refuses ``data``."""
    project = data.get("project")
    if not isinstance(project, dict) or not isinstance(project.get("name"), str):
        return "[project] name is required"
    for key in ("type", "version", "description"):
        if key in project and not isinstance(project[key], str):
            return f"[project] {key} must be a string"
    for name, ws in (data.get("workspace") or {}).items():
        if not isinstance(ws, dict) or not isinstance(ws.get("path"), str):
            return f"[workspace.{name}] path is required"
        for key in ("framework", "runtime", "package_manager"):
            if key in ws and not isinstance(ws[key], str):
                return f"[workspace.{name}] {key} must be a string"
    for name, phase in (data.get("lifecycle") or {}).items():
        if not isinstance(phase, dict):
            return f"[lifecycle.{name}] must be a table"
        types: dict[str, Any] = {
            "description": str,
            "command": str,
            "watch": bool,
            "port": int,
            "cache": bool,
            "parallel": bool,
        }
        for key, kind in types.items():
            if key in phase and not isinstance(phase[key], kind):
                return f"[lifecycle.{name}] {key} has the wrong type"
        for key in ("commands", "outputs", "workspaces"):
            if key in phase and not _is_str_list(phase[key]):
                return f"[lifecycle.{name}] {key} must be a list of strings"
        if not phase.get("command") and not phase.get("commands"):
            return f"[lifecycle.{name}] has no command"
    hooks = data.get("hooks") or {}
    for key, value in hooks.items():
        if key in HOOK_LISTS and not _is_str_list(value):
            return f"[hooks] {key} must be a list of strings"
        if key in ("on_error", "on_success") and not isinstance(value, str):
            return f"[hooks] {key} must be a string"
    return None


def make_toml_files(corpus: Path) -> list[Path]:
    return sorted(corpus.rglob("make.toml"))


def _project_copy(file: Path, data: dict[str, Any], into: Path) -> Path:
    """``file`` in a fresh directory with the workspace folders it names (the corpus keeps only
    the make.toml files)."""
    shutil.copyfile(file, into / "make.toml")
    for ws in (data.get("workspace") or {}).values():
        path = ws.get("path") if isinstance(ws, dict) else None
        if isinstance(path, str) and ".." not in Path(path).parts and not Path(path).is_absolute():
            (into / path).mkdir(parents=True, exist_ok=True)
    return into


def check_make_toml(file: Path) -> dict[str, Any]:
    """One make.toml: its format, whether ggen accepts it, and whether it loads and dry-runs."""
    import tomllib

    from ggen_lifecycle.config import load_project
    from ggen_lifecycle.errors import LifecycleError
    from ggen_lifecycle.runner import Runner, RunOptions

    text = file.read_text(encoding="utf-8")
    row: dict[str, Any] = {"file": str(file), "ggen_format": "[lifecycle." in text}
    try:
        data = tomllib.loads(text)
        refusal = ggen_refuses(data) if row["ggen_format"] else "not ggen's lifecycle format"
    except tomllib.TOMLDecodeError as exc:
        data, refusal = {}, f"malformed TOML: {exc}"
    row["ggen_accepts"] = refusal is None
    row["ggen_refusal"] = refusal
    row["parses"] = row["dry_runs"] = False
    with tempfile.TemporaryDirectory(prefix="ggen-compat-") as tmp:
        project_dir = _project_copy(file, data, Path(tmp))
        try:
            project = load_project(project_dir)
            row["parses"] = True
            Runner(project, RunOptions(jobs=1)).plan(project.declared_phases())
            row["dry_runs"] = True
        except LifecycleError as exc:
            row["error"] = " ".join(str(exc).split())
    return row


# -- templates ----------------------------------------------------------------------------------


def template_files(corpus: Path) -> list[Path]:
    return sorted(corpus.rglob("*.tmpl"))


PACKAGE_MANIFESTS = ("package.toml", "gpack.toml")


def is_package(folder: Path) -> bool:
    return any((folder / name).is_file() for name in PACKAGE_MANIFESTS)


def pack_root(template: Path, corpus: Path) -> Path:
    """The nearest folder at or above the template's that is a package (a ``package.toml`` or
    ``gpack.toml``) or holds a ``*.ttl`` graph (else the template's own)."""
    for folder in (template.parent, *template.parent.parents):
        if folder == corpus.parent:
            break
        if is_package(folder) or any(folder.glob("*.ttl")):
            return folder
    return template.parent


def _gpack_template(template: Path, root: Path) -> Any:
    """The template in a gpack rooted at ``root``; a package's graph is every ``*.ttl`` in it,
    as ``ggen market import`` makes it."""
    from ggen_market.manifest import Manifest
    from ggen_market.template.generate import GpackTemplate

    graphs = ["**/*.ttl"] if is_package(root) else ["*.ttl", "ontology/**/*.ttl"]

    manifest = Manifest.model_validate(
        {
            "gpack": {"id": "io.ggen.corpus", "name": "corpus", "version": "0.0.0"},
            "templates": {"patterns": ["**/*.tmpl"]},
            "rdf": {"patterns": graphs},
        }
    )
    name = template.relative_to(root).as_posix().removesuffix(".tmpl")
    return GpackTemplate("io.ggen.corpus", "0.0.0", name, template, root, manifest)


# A graph or query file the template names, or the file it injects into, is not in the corpus.
_ABSENT = re.compile(
    r"no file .* beside the template or in the gpack|cannot inject .* does not exist"
)
_UNDEFINED = re.compile(r"'([A-Za-z_]\w*)' is undefined")
# Names ggen binds from a template's queries (``results`` for a query given as a string).
_QUERY_NAMES = {"results", "rows", "row", "sparql_results"}


def _query_names(template: Path) -> set[str]:
    import yaml

    text = template.read_text(encoding="utf-8", errors="replace")
    parts = text.split("\n---", 1) if text.startswith("---") else []
    try:
        front = yaml.safe_load(parts[0][3:]) if parts else None
    except yaml.YAMLError:
        return set()
    sparql = front.get("sparql") if isinstance(front, dict) else None
    return set(sparql) if isinstance(sparql, dict) else set()


def needs_var(message: str, template: Path) -> bool:
    """Whether the error is a variable that only ``--var`` could give (not a query's rows)."""
    found = _UNDEFINED.search(message)
    if found is None:
        return False
    return found.group(1) not in _QUERY_NAMES | _query_names(template)


_KINDS = [
    (re.compile(r"front matter: (\w+): unknown key|unknown key '?(\w+)"), "unknown key"),
    (re.compile(r"front matter"), "front matter"),
    (re.compile(r"is undefined"), "undefined variable"),
    (re.compile(r"No filter named '?(\w+)"), "missing filter"),
    (re.compile(r"no test named", re.I), "missing test"),
    (re.compile(r"Encountered unknown tag '?(\w+)"), "unknown tag"),
    (re.compile(r"template syntax error"), "syntax"),
    (re.compile(r"TypeError"), "TypeError"),
    (re.compile(r"SPARQL|not valid turtle|RdfError|rdf:"), "rdf/sparql"),
    (re.compile(r"has no attribute"), "attribute"),
]


def error_kind(message: str) -> str:
    for pattern, kind in _KINDS:
        found = pattern.search(message)
        if found:
            detail = next((g for g in found.groups() if g), "") if found.groups() else ""
            return f"{kind}: {detail}" if detail else kind
    return "other"


def check_template(template: Path, corpus: Path) -> dict[str, Any]:
    """Render one template into a scratch directory (a dry run: nothing is written)."""
    from ggen_market.errors import MarketError
    from ggen_market.template.generate import generate

    row: dict[str, Any] = {"file": str(template.relative_to(corpus)), "renders": False}
    row["body_only"] = not template.read_bytes().startswith(b"---")
    root = pack_root(template, corpus)
    with tempfile.TemporaryDirectory(prefix="ggen-compat-out-") as out:
        try:
            generate([_gpack_template(template, root)], Path(out), {}, dry_run=True)
            row["renders"] = True
        except MarketError as exc:
            message = " ".join(str(exc).split())
            row["error"] = message.replace(str(corpus) + "/", "")
            row["kind"] = error_kind(message)
            row["needs_var"] = needs_var(message, template)
            row["needs_data"] = bool(_ABSENT.search(message))
    return row


# -- packages -----------------------------------------------------------------------------------


def package_dirs(corpus: Path) -> list[Path]:
    """Every folder holding a ggen package manifest (``package.toml``, or a ``gpack.toml``)."""
    found = {p.parent for name in ("package.toml", "gpack.toml") for p in corpus.rglob(name)}
    return sorted(found)


def check_packages(corpus: Path) -> list[dict[str, Any]]:
    """``ggen market import --dry-run --keep-going`` of each package: imported, or why not."""
    from ggen_market.errors import MarketError
    from ggen_market.ggen_import import import_packages

    rows = []
    for package in package_dirs(corpus):
        row: dict[str, Any] = {"file": str(package.relative_to(corpus)), "imports": False}
        try:
            report = import_packages([package], Path("unused"), dry_run=True, keep_going=True)
        except MarketError as exc:
            row["error"] = " ".join(str(exc).split())
        else:
            row["imports"] = bool(report.imported)
            if report.refused:
                row["error"] = " ".join(" ".join(report.refused[0].problems).split())
            else:
                row["changes"] = len(report.imported[0].changes)
        if "error" in row:
            row["error"] = row["error"].replace(str(corpus) + "/", "")
        rows.append(row)
    return rows


# -- report -------------------------------------------------------------------------------------


def measure(corpus: Path) -> dict[str, Any]:
    makes = [check_make_toml(f) for f in make_toml_files(corpus)]
    templates = [check_template(t, corpus) for t in template_files(corpus)]
    packages = check_packages(corpus)
    accepted = [m for m in makes if m["ggen_accepts"]]
    with_data = [
        t
        for t in templates
        if not t.get("needs_var") and not t.get("needs_data") and not t["body_only"]
    ]
    first: dict[str, str] = {}
    counts: collections.Counter[str] = collections.Counter()
    for item in [*makes, *with_data]:
        if "error" in item:
            kind = item.get("kind") or "make.toml: " + error_kind(item["error"])
            counts[kind] += 1
            first.setdefault(kind, f"{item['file']}: {item['error'][:300]}")
    return {
        "corpus": str(corpus),
        "make_toml": {
            "files": len(makes),
            "ggen_format": sum(m["ggen_format"] for m in makes),
            "ggen_accepts": len(accepted),
            "parse": sum(m["parses"] for m in makes),
            "dry_run": sum(m["dry_runs"] for m in makes),
            "accepted_parse": sum(m["parses"] for m in accepted),
            "accepted_dry_run": sum(m["dry_runs"] for m in accepted),
            "rows": makes,
        },
        "templates": {
            "files": len(templates),
            "body_only": sum(t["body_only"] for t in templates),
            "needs_var": sum(bool(t.get("needs_var")) for t in templates),
            "needs_data": sum(bool(t.get("needs_data")) for t in templates),
            "with_data": len(with_data),
            "render": sum(t["renders"] for t in with_data),
            "rows": templates,
        },
        "packages": {
            "files": len(packages),
            "import": sum(p["imports"] for p in packages),
            "rows": packages,
        },
        "errors": {kind: {"count": counts[kind], "first": first[kind]} for kind in counts},
    }


def print_report(result: dict[str, Any], show: int) -> None:
    mk, tp = result["make_toml"], result["templates"]
    share = 100 * tp["render"] / tp["with_data"] if tp["with_data"] else 0.0
    print(f"ggen compatibility over {result['corpus']}")
    print(f"{'measure':<58} {'count':>7}")
    print("-" * 66)
    rows = [
        ("make.toml files", mk["files"]),
        ("  of ggen's lifecycle format", mk["ggen_format"]),
        ("  accepted by ggen's own loader", mk["ggen_accepts"]),
        ("  parse here (all files)", mk["parse"]),
        ("  dry-run here (all files)", mk["dry_run"]),
        ("  accepted by ggen: parse here", mk["accepted_parse"]),
        ("  accepted by ggen: dry-run here", mk["accepted_dry_run"]),
        ("templates (*.tmpl)", tp["files"]),
        ("  body only: output and query come from a ggen.toml rule", tp["body_only"]),
        ("  need --var values the corpus does not give", tp["needs_var"]),
        ("  name graph/query files (or inject into files) not in it", tp["needs_data"]),
        ("  with their data present", tp["with_data"]),
        ("  render unchanged", tp["render"]),
    ]
    for label, count in rows:
        print(f"{label:<58} {count:>7}")
    print(f"{'  share of templates with data that render':<58} {share:>6.1f}%")
    print(f"{'packages (package.toml, gpack.toml)':<58} {result['packages']['files']:>7}")
    print(f"{'  `ggen market import` converts and checks':<58} {result['packages']['import']:>7}")
    print("\nfirst error by kind (count):")
    ordered = sorted(result["errors"].items(), key=lambda kv: -kv[1]["count"])
    for kind, info in ordered[:show]:
        print(f"  {info['count']:>4}  {kind}\n        {info['first']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", help=f"corpus directory (default: ${CORPUS_ENV} or ../shared)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    parser.add_argument("--show", type=int, default=25, help="error kinds to list")
    args = parser.parse_args(argv)
    corpus = corpus_dir(args.corpus)
    if not corpus.is_dir():
        print(f"no ggen corpus at {corpus} (set {CORPUS_ENV} or pass --corpus)", file=sys.stderr)
        return 2
    result = measure(corpus.resolve())
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_report(result, args.show)
    return 0


if __name__ == "__main__":
    sys.exit(main())
