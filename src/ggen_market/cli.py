"""``ggen market ...`` and ``ggen template ...``: click groups mounted by the root ``ggen``.

Heavy modules (httpx, jinja2, rdflib, yaml, pydantic) load inside the commands that need them,
so ``ggen --help`` and ``ggen market search`` stay fast.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .output import print_json, report_change, report_error, warn
from .sources import Sources

if TYPE_CHECKING:
    from .install import Project

F = TypeVar("F", bound=Callable[..., Any])


def _print_json(data: Any) -> None:
    print_json(data, click.echo)


def _warn(messages: list[str]) -> None:
    warn(messages, click.echo)


def handle_errors(func: F) -> F:
    """Turn a MarketError into ``error: ...`` on stderr (and JSON on stdout with --json), exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .errors import MarketError

        try:
            return func(*args, **kwargs)
        except (MarketError, OSError) as exc:
            report_error(exc, bool(kwargs.get("as_json")), click.echo)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def json_command(func: F) -> F:
    """Add ``--json`` and report a :class:`MarketError` as ``error: ...`` (see handle_errors)."""
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(
        handle_errors(func)
    )


def project_option(func: F) -> F:
    return click.option(
        "--project",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("."),
        show_default=True,
        help="Project directory holding ggen.lock and .ggen/.",
    )(func)


def registry_command(func: F) -> F:
    """Add the options shared by the commands that read registries or change the project.

    ``--registry``, ``--project``, ``--offline``, ``--timeout``, ``--progress``,
    ``--allow-fallback`` reach the
    command as one ``sources: Sources`` argument; ``--json`` and errors as in :func:`json_command`.
    """

    @functools.wraps(func)
    def command(
        *args: Any,
        registries: tuple[str, ...],
        project: Path,
        offline: bool,
        timeout: float | None,
        progress: bool | None,
        allow_fallback: bool,
        **kwargs: Any,
    ) -> Any:
        sources = Sources(project, registries, offline, timeout, progress, allow_fallback)
        return func(*args, sources=sources, **kwargs)

    options = [
        click.option(
            "--registry",
            "registries",
            multiple=True,
            metavar="URL",
            help="Registry to use instead of the configured ones (path, file://, http(s)://,"
            " git+URL#REF). Repeat for several; the first has precedence.",
        ),
        project_option,
        click.option("--offline", is_flag=True, help="Use cached indexes only; no network."),
        click.option("--timeout", type=float, help="HTTP timeout in seconds (default 10)."),
        click.option(
            "--progress/--no-progress",
            default=None,
            help="Show download progress on stderr (default: when stderr is a terminal).",
        ),
        click.option(
            "--allow-fallback",
            is_flag=True,
            help="When a registry cannot be read (and has no cached index), let the next"
            " registry serve its ids instead of stopping.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return json_command(command)  # type: ignore[return-value]


def _entry_json(entry: Any, registry: str) -> dict[str, Any]:
    return {
        "id": entry.id,
        "name": entry.name,
        "latest": entry.latest,
        "description": entry.description,
        "category": entry.category,
        "tags": list(entry.tags),
        "keywords": list(entry.keywords),
        "downloads": entry.downloads,
        "registry": registry,
    }


@click.group()
def market() -> None:
    """Find, install and verify gpacks (packages of templates, RDF graphs and queries)."""


@market.command(short_help="Search gpacks by id, name, tags, keywords, description.")
@click.argument("query", required=False, default="")
@click.option("--category", help="Only gpacks of this category.")
@click.option("--tag", help="Only gpacks with this tag.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@registry_command
def search(
    query: str, category: str | None, tag: str | None, limit: int, sources: Sources, as_json: bool
) -> None:
    """Search gpacks: exact id first, then name, tags, keywords, description, downloads."""
    from .search import search as run_search

    catalog = sources.catalog()
    words = query.lower().split()
    hits = run_search(
        ((entry, reg.url) for entry, reg in (catalog.matching(words) if words else catalog)),
        query,
        category=category,
        tag=tag,
        limit=limit,
    )
    _warn(catalog.warnings)
    if as_json:
        _print_json(
            {
                "ok": True,
                "query": query,
                "results": [_entry_json(h.entry, h.registry) | {"score": h.score} for h in hits],
                "warnings": catalog.warnings,
            }
        )
        return
    if not hits:
        click.echo(f"no gpack matches {query!r}")
        return
    width = max(len(h.entry.id) for h in hits)
    for hit in hits:
        click.echo(f"{hit.entry.id:<{width}}  {hit.entry.latest:<10} {hit.entry.description}")


@market.command()
@registry_command
def categories(sources: Sources, as_json: bool) -> None:
    """List categories with the number of gpacks in each."""
    catalog = sources.catalog()
    counts: dict[str, int] = {}
    for entry, _ in catalog:
        counts[entry.category] = counts.get(entry.category, 0) + 1
    _warn(catalog.warnings)
    if as_json:
        _print_json({"ok": True, "categories": dict(sorted(counts.items()))})
        return
    for name, count in sorted(counts.items()):
        click.echo(f"{name:<20} {count}")


@market.command()
@click.argument("pack_id", metavar="ID")
@registry_command
def info(pack_id: str, sources: Sources, as_json: bool) -> None:
    """Show a gpack's metadata and every published version."""
    catalog = sources.catalog()
    entry, registry = catalog.require(pack_id)
    _warn(catalog.warnings)
    versions = [entry.versions[str(v)] for v in entry.sorted_versions()]
    validations = _validations(versions, sources)
    if as_json:
        data = _entry_json(entry, registry.url) | {
            "license": entry.license,
            "authors": list(entry.authors),
            "homepage": entry.homepage,
            "versions": [
                {"version": v.version} | v.to_json() | {"validated": validations[v.version]}
                for v in versions
            ],
        }
        _print_json({"ok": True, "pack": data})
        return
    click.echo(f"{entry.id} — {entry.name}")
    if entry.description:
        click.echo(f"  {entry.description}")
    click.echo(f"  category: {entry.category}    license: {entry.license or '-'}")
    if entry.tags:
        click.echo(f"  tags: {', '.join(entry.tags)}")
    if entry.authors:
        click.echo(f"  authors: {', '.join(entry.authors)}")
    click.echo(f"  registry: {registry.url}")
    click.echo("  versions:")
    for v in versions:
        deps = ", ".join(f"{d} {r}" for d, r in sorted(v.dependencies.items())) or "no dependencies"
        click.echo(f"    {v.version:<12} sha256:{v.sha256[:16]}…  {deps}")
        click.echo(f"    {'':<12} {_validation_line(validations[v.version])}")


def _validations(versions: list[Any], sources: Sources) -> dict[str, dict[str, Any]]:
    """Each version's validation (see :func:`ggen_market.trust.require.describe`)."""
    if not any(v.validation for v in versions):
        return {
            v.version: {"validated": False, "reason": "no validation statement"} for v in versions
        }
    from .trust.require import describe, load_trusted_keys

    keys = load_trusted_keys(sources.config())
    return {v.version: describe(v, keys) for v in versions}


def _validation_line(found: dict[str, Any]) -> str:
    if not found["validated"]:
        return f"not validated: {found['reason']}"
    trust = "a trusted key" if found["trusted"] else "key (not in trusted_keys, unchecked)"
    return (
        f"validated {found['validated_on']} by {trust} {found['keyid'][:16]}, policy"
        f" {found['policy'].split(' ')[0]}"
    )


def _report_change(change: Any, proj: Project, as_json: bool, verb: str) -> None:
    report_change(change, proj, as_json, verb, click.echo)


def require_validated_option(func: F) -> F:
    return click.option(
        "--require-validated",
        is_flag=True,
        help="Install only versions with a passing validation statement for exactly their"
        " archive, signed by a key in ggen.toml's [market] trusted_keys.",
    )(func)


@market.command(short_help="Install gpacks and dependencies; no ID: what ggen.lock pins.")
@click.argument("specs", nargs=-1, metavar="ID[@RANGE]...")
@require_validated_option
@registry_command
def add(specs: tuple[str, ...], require_validated: bool, sources: Sources, as_json: bool) -> None:
    """Install gpacks and their dependencies; with no ID, install exactly what ggen.lock pins."""
    from .add_command import run_add

    if require_validated:
        sources = dataclasses.replace(sources, require_validated=True)
    run_add(list(specs), sources, as_json, click.echo)


@market.command()
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@registry_command
def remove(ids: tuple[str, ...], sources: Sources, as_json: bool) -> None:
    """Remove gpacks, and the dependencies nothing else needs."""
    proj = sources.open_project()
    _report_change(proj.remove(list(ids)), proj, as_json, "remove")


@market.command(short_help="Move gpacks to the newest versions their ranges allow.")
@click.argument("ids", nargs=-1, metavar="[ID]...")
@require_validated_option
@registry_command
def update(ids: tuple[str, ...], require_validated: bool, sources: Sources, as_json: bool) -> None:
    """Move gpacks (all, or the IDs given) to the newest versions their ranges allow."""
    if require_validated:
        sources = dataclasses.replace(sources, require_validated=True)
    proj = sources.open_project()
    _report_change(proj.update(list(ids)), proj, as_json, "update")


@market.command(name="list", short_help="List installed gpacks; --available: every gpack offered.")
@click.option("--available", is_flag=True, help="List what the registries offer instead.")
@registry_command
def list_(available: bool, sources: Sources, as_json: bool) -> None:
    """List installed gpacks (from ggen.lock), or with --available every gpack offered."""
    if available:
        catalog = sources.catalog()
        rows = [(entry, reg.url) for entry, reg in catalog]
        _warn(catalog.warnings)
        if as_json:
            _print_json({"ok": True, "available": [_entry_json(e, r) for e, r in rows]})
            return
        for entry, _ in rows:
            click.echo(f"{entry.id:<44} {entry.latest:<10} {entry.description}")
        return
    from .lockfile import LOCK_NAME, Lockfile, read_lock

    root = sources.project.resolve()
    lock = read_lock(root / LOCK_NAME) or Lockfile()
    if as_json:
        _print_json(
            {
                "ok": True,
                "installed": [
                    pkg.to_json()
                    | {
                        "path": str(pkg.install_dir(root)),
                        "requested": lock.requires.get(pid),
                    }
                    for pid, pkg in sorted(lock.packages.items())
                ],
            }
        )
        return
    if not lock.packages:
        click.echo("no gpacks installed (see `ggen market search` and `ggen market add`)")
    for pid, pkg in sorted(lock.packages.items()):
        why = f"requested {lock.requires[pid]}" if pid in lock.requires else "dependency"
        kind = "  [test gpack]" if pkg.test_pack else ""
        click.echo(f"{pid:<44} {pkg.version:<10} {why}{kind}")


@market.command(short_help="Re-hash installed gpacks against ggen.lock.")
@project_option
@json_command
def verify(project: Path, as_json: bool) -> None:
    """Re-hash installed gpacks against ggen.lock; exit 1 when one is modified or missing."""
    from .config import MarketConfig
    from .install import Project

    proj = Project(project, MarketConfig(registries=(), cache_dir=Path("."), timeout=1.0))
    results = proj.verify()
    bad = [r for r in results if r.status != "ok"]
    if as_json:
        _print_json({"ok": not bad, "packages": [r.__dict__ for r in results]})
    else:
        for r in results:
            detail = f"  expected {r.expected}, found {r.actual}" if r.status == "modified" else ""
            click.echo(f"{r.status:<9} {r.id}@{r.version}{detail}")
        if not results:
            click.echo("nothing installed")
    if bad:
        sys.exit(1)


@market.command(short_help="Archive a gpack directory reproducibly; print its sha256.")
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Archive to write (default: ID-VERSION.tar.gz in the current directory).",
)
@json_command
def pack(directory: Path, output: Path | None, as_json: bool) -> None:
    """Make a reproducible archive of a gpack directory and print its sha256."""
    from pytest_cleanroom.safe_write import write_output

    from .archive import sha256_bytes
    from .builder import pack_gpack

    manifest, data = pack_gpack(directory)
    target = output or Path(f"{manifest.id}-{manifest.version}.tar.gz")
    write_output(target, data)
    digest = sha256_bytes(data)
    if as_json:
        _print_json(
            {
                "ok": True,
                "id": manifest.id,
                "version": manifest.version,
                "archive": str(target),
                "sha256": digest,
                "size": len(data),
            }
        )
        return
    click.echo(f"{digest}  {target}")


@market.command(name="index", short_help="Build index.json from gpack directories and archives.")
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write index.json and archives/ (default: DIRECTORY).",
)
@json_command
def index_cmd(directory: Path, output: Path | None, as_json: bool) -> None:
    """Build index.json from a folder of gpack directories and/or archives."""
    from .builder import build_index

    index = build_index(directory, output)
    out = output or directory
    if as_json:
        _print_json(
            {
                "ok": True,
                "index": str(out / "index.json"),
                "packs": {pid: sorted(e.versions) for pid, e in sorted(index.packs.items())},
            }
        )
        return
    versions = sum(len(e.versions) for e in index.packs.values())
    click.echo(f"{out / 'index.json'}: {len(index.packs)} gpack(s), {versions} version(s)")


@click.group()
def template() -> None:
    """Generate files from the templates of installed gpacks."""


def _parse_vars(pairs: tuple[str, ...]) -> dict[str, str]:
    from .errors import TemplateError

    variables: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise TemplateError(f"--var {pair!r}: write NAME=VALUE with NAME a valid identifier")
        variables[key.strip()] = value
    return variables


@template.command(name="list")
@project_option
@json_command
def template_list(project: Path, as_json: bool) -> None:
    """List the templates of the gpacks installed in the project."""
    from .template.frontmatter import parse_template
    from .template.generate import installed_templates

    rows = []
    for tpl in installed_templates(project.resolve()):
        front = parse_template(tpl.path).front
        rows.append(
            {
                "template": tpl.ref,
                "gpack": tpl.pack_id,
                "version": tpl.version,
                "to": front.to or tpl.name,
                "description": front.description,
                "vars": front.vars,
            }
        )
    if as_json:
        _print_json({"ok": True, "templates": rows})
        return
    if not rows:
        click.echo("no templates: install a gpack first (`ggen market add ID`)")
    for row in rows:
        click.echo(f"{row['template']:<56} -> {row['to']}")


@template.command(short_help="Render a gpack's templates (ID or ID:TEMPLATE) into --out.")
@click.argument("ref", metavar="ID[:TEMPLATE]")
@click.option("--var", "pairs", multiple=True, metavar="NAME=VALUE", help="Set a variable.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Output directory; nothing is ever written outside it.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be written; write nothing.")
@click.option("--force", is_flag=True, help="Overwrite files whose content differs.")
@click.option(
    "--hook-policy",
    type=click.Choice(["strict", "locked", "standard", "permissive"]),
    default="strict",
    show_default=True,
    help="Cleanroom policy of the templates' sh_before/sh_after commands (workspace: --out).",
)
@click.option(
    "--hook-backend",
    default="auto",
    show_default=True,
    help="Cleanroom backend of those commands: auto, local, bwrap, unshare or docker.",
)
@click.option(
    "--hooks-in-validation-room",
    "hooks_confined_by",
    metavar="POLICY",
    hidden=True,
    help="Only for `ggen market validate`, inside its cleanroom: run hooks there.",
)
@project_option
@json_command
def generate(
    ref: str,
    pairs: tuple[str, ...],
    out: Path,
    dry_run: bool,
    force: bool,
    hook_policy: str,
    hook_backend: str,
    hooks_confined_by: str | None,
    project: Path,
    as_json: bool,
) -> None:
    """Render a template (ID:TEMPLATE) or every template of a gpack (ID) into --out.

    A template's sh_before/sh_after commands run in a cleanroom whose only writable place is
    --out (policy --hook-policy: strict by default, no network)."""
    from .errors import MarketError
    from .template.generate import find_templates
    from .template.generate import generate as run_generate
    from .template.hooks import HookRun

    hooks: list[HookRun] = []
    warnings: list[str] = []

    def on_hook(record: HookRun) -> None:
        hooks.append(record)
        if not as_json:
            _show_hook(record)

    variables = _parse_vars(pairs)
    templates = find_templates(project.resolve(), ref)
    try:
        actions = run_generate(
            templates,
            out,
            variables,
            force=force,
            dry_run=dry_run,
            hook_policy=hook_policy,
            hook_backend=hook_backend,
            on_hook=on_hook,
            on_warning=warnings.append,
            hooks_confined_by=hooks_confined_by,
        )
    except (MarketError, OSError) as exc:  # the hooks that ran (a failed one too) are reported
        report_error(exc, as_json, click.echo, {"hooks": [h.to_json() for h in hooks]})
        sys.exit(1)
    _warn(warnings)
    if as_json:
        _print_json(
            {
                "ok": True,
                "dry_run": dry_run,
                "out": str(out.resolve()),
                "files": [a.to_json() for a in actions],
                "hooks": [h.to_json() for h in hooks],
                "warnings": warnings,
            }
        )
        return
    prefix = "would " if dry_run else ""
    for action in actions:
        reason = f" ({action.reason})" if action.reason else ""
        click.echo(f"{prefix}{action.action:<9} {action.rel}{reason}")


def _show_hook(record: Any) -> None:
    """A hook as it ran (its output indented), or what a dry run would run."""
    hook = record.hook
    if not record.ran:
        click.echo(
            f"would run {hook.key} of {hook.template} in a cleanroom (policy {record.policy}):"
            f" {hook.command}"
        )
        return
    click.echo(
        f"ran {hook.key} of {hook.template} in a cleanroom (policy {record.policy}, backend"
        f" {record.backend}): {hook.command}  [exit {record.exit_code}]"
    )
    for line in (record.stdout + record.stderr).rstrip("\n").splitlines():
        click.echo(f"  | {line}")


def _mount_trust_commands() -> None:
    """Commands that live beside their logic (they use the option decorators defined above)."""
    from .hosting.commands import serve
    from .import_command import import_command
    from .trust import commands

    market.add_command(commands.validate)
    market.add_command(commands.publish)
    market.add_command(serve)
    market.add_command(import_command)


_mount_trust_commands()
