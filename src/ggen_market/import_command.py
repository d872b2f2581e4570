"""``ggen market import``: the click command, mounted by ``ggen market``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .cli import json_command
from .output import print_json


@click.command(name="import", short_help="Convert ggen packages (package.toml) into gpacks.")
@click.argument(
    "sources",
    nargs=-1,
    required=True,
    metavar="DIR...",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
)
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory receiving one gpack directory per package (OUT/<id>/).",
)
@click.option(
    "--id-prefix",
    default="io.ggen",
    show_default=True,
    help="Prefix of the id given to a package whose manifest has none (PREFIX.<name>).",
)
@click.option("--force", is_flag=True, help="Replace a gpack already at OUT/<id>.")
@click.option(
    "--keep-going",
    is_flag=True,
    help="Write the packages that can be imported, report the others (exit status 1).",
)
@click.option("--dry-run", is_flag=True, help="Convert and check; write nothing.")
@json_command
def import_command(
    sources: tuple[Path, ...],
    out: Path,
    id_prefix: str,
    force: bool,
    keep_going: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Import ggen packages: each DIR is a package (package.toml or ggen's gpack.toml) or a
    folder of them. Every change made to a manifest is reported; by default a package that
    cannot be imported stops the import and nothing is written."""
    from .ggen_import import import_packages

    report = import_packages(
        list(sources),
        out,
        id_prefix=id_prefix,
        force=force,
        keep_going=keep_going,
        dry_run=dry_run,
    )
    if as_json:
        print_json(report.to_json(), click.echo)
    else:
        verb = "would import" if dry_run else "imported"
        for item in report.imported:
            click.echo(f"{verb} {item.id} {item.version} from {item.source} -> {item.path}")
            for change in item.changes:
                click.echo(f"  {change}")
        for refused in report.refused:
            click.echo(f"error: cannot import {refused}", err=True)
    if report.refused:
        sys.exit(1)
