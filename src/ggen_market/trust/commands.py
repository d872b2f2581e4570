"""``ggen market validate`` and ``ggen market publish``: click commands mounted by ``market``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..cli import json_command, project_option, registry_command
from ..hosting.protocol import TOKEN_ENV
from ..output import print_json
from ..sources import Sources

if TYPE_CHECKING:
    from pytest_cleanroom.attest.keys import SigningKey

    from ..config import MarketConfig
    from ..hosting.upload import HttpTarget
    from .validate import Check, ValidationReport

SIGNING_KEY_ENV = "GGEN_SIGNING_KEY"


def signing_key_option(func: Any) -> Any:
    return click.option(
        "--signing-key",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=SIGNING_KEY_ENV,
        help=f"ed25519 private key (PEM) signing the statement (also ${SIGNING_KEY_ENV}).",
    )(func)


def backend_option(func: Any) -> Any:
    return click.option(
        "--backend",
        default="auto",
        show_default=True,
        help="Cleanroom backend: auto, local, bwrap, unshare or docker.",
    )(func)


def _show(check: Check) -> None:
    took = f"  ({check.duration:.1f} s)" if check.duration >= 0.05 else ""
    click.echo(f"  {check.outcome:<8} {check.kind:<11} {check.name}: {check.detail}{took}")
    if check.outcome == "failed" and check.output_tail:
        for line in check.output_tail.splitlines()[-8:]:
            click.echo(f"           | {line}")


def run_validation(target: str, sources: Sources, backend: str, quiet: bool) -> ValidationReport:
    """Validate a gpack directory, or ``ID[@VERSION]`` from the registries."""
    from .validate import archive_from_registry, archive_of_directory, validate_archive

    path = Path(target)
    if path.is_dir():
        data, label = archive_of_directory(path), str(path)
    else:
        data, label = archive_from_registry(target, sources.open_project())
    if not quiet:
        click.echo(f"validating {label} in a cleanroom", err=True)
    return validate_archive(
        data, source=label, config=sources.config(), backend=backend,
        progress=None if quiet else _show,
    )  # fmt: skip


def write_statement(report: ValidationReport, key_path: Path, output: Path) -> dict[str, Any]:
    """Sign the report's statement with ``key_path``; write its envelope to ``output``."""
    import json

    from pytest_cleanroom.safe_write import write_output

    from .statement import sign_statement

    envelope = sign_statement(report.statement(), _load_signing_key(key_path))
    write_output(output, json.dumps(envelope, indent=2, ensure_ascii=True) + "\n")
    return envelope


@click.command(short_help="Install, render and check a gpack in a cleanroom; sign it.")
@click.argument("target", metavar="DIR|ID[@VERSION]")
@signing_key_option
@click.option(
    "--statement",
    "statement_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the signed statement (default: ID-VERSION.validation.intoto.json).",
)
@backend_option
@registry_command
def validate(
    target: str,
    signing_key: Path | None,
    statement_path: Path | None,
    backend: str,
    sources: Sources,
    as_json: bool,
) -> None:
    """Validate a gpack (a directory, or ID[@VERSION] from the registries) in a cleanroom.

    Installs it from its archive as `add` does, renders every template with its sample
    variables, runs its [validation] steps and a test gpack's scenarios under the `strict`
    policy (or stricter), and checks nothing is written outside the output. With
    --signing-key, writes a signed in-toto statement of the outcome. Exit 1 unless it passed.
    """
    report = run_validation(target, sources, backend, quiet=as_json)
    written: Path | None = None
    if signing_key is not None:
        written = statement_path or Path(
            f"{report.pack_id}-{report.version}.validation.intoto.json"
        )
        write_statement(report, signing_key, written)
    if as_json:
        data = report.to_json() | {"statement": str(written) if written else None}
        print_json(data, click.echo)
    else:
        note = f"; signed statement {written}" if written else " (no --signing-key: no statement)"
        click.echo(f"{report.result}: {report.pack_id}@{report.version} under policy"
                   f" {report.policy_name} ({report.policy_digest[:19]}…), backend"
                   f" {report.backend or '-'}{note}")  # fmt: skip
    if not report.ok:
        sys.exit(1)


@click.command(short_help="Validate a gpack directory and add it, signed, to a registry.")
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "--registry",
    "target",
    required=True,
    metavar="DIR|URL",
    help="Registry receiving the archive and the index entry: a directory (path or file://),"
    " or the http(s):// URL of a `ggen market serve` registry (uploaded with a token from"
    f" ${TOKEN_ENV} or token_env in ggen.toml).",
)
@signing_key_option
@backend_option
@project_option
@json_command
def publish(
    directory: Path,
    target: str,
    signing_key: Path | None,
    backend: str,
    project: Path,
    as_json: bool,
) -> None:
    """Pack DIRECTORY, validate it in a cleanroom and, only when it passed, add the version to
    the registry's index with its signed validation statement (archive and index written all or
    nothing; over HTTP, uploaded and checked again by the server). Dependencies resolve from the
    target registry, then the configured ones."""
    from ..builder import check_gpack
    from ..config import load_config
    from ..errors import MarketError
    from ..hosting.upload import HttpTarget, is_http
    from .publish import publish_version, registry_directory
    from .statement import sign_statement
    from .validate import archive_of_directory, validate_archive

    if signing_key is None:
        raise MarketError(
            f"publish signs its validation statement: pass --signing-key (or ${SIGNING_KEY_ENV})"
        )
    key = _load_signing_key(signing_key)
    config = load_config(project)
    remote = HttpTarget.open(target, config) if is_http(target) else None
    registry = None if remote else registry_directory(target)
    manifest = check_gpack(directory)
    data = archive_of_directory(directory)
    if remote is not None:
        remote.check_accepts(key.keyid, len(data))  # before minutes of validation
    if not as_json:
        click.echo(f"validating {directory} in a cleanroom", err=True)
    report = validate_archive(
        data, source=str(directory), config=_publishing_config(config, remote, registry),
        backend=backend, progress=None if as_json else _show,
    )  # fmt: skip
    label = f"{manifest.id}@{manifest.version}"
    if not report.ok:
        if as_json:
            print_json(report.to_json() | {"published": False}, click.echo)
        click.echo(f"error: {label}: validation {report.result}; nothing published", err=True)
        sys.exit(1)
    envelope = sign_statement(report.statement(), key)
    extra: dict[str, Any] = {"published": True, "keyid": key.keyid}
    if remote is not None:
        if not as_json:
            click.echo(f"uploading {len(data)} bytes to {remote.url}", err=True)
        answer = remote.publish(manifest.id, manifest.version, data, envelope)
        extra |= {"registry": remote.url, "already_published": answer.get("already_published")}
        where = remote.url + (" (already there, unchanged)" if extra["already_published"] else "")
    else:
        assert registry is not None
        publish_version(registry, manifest, data, envelope)
        extra["registry"], where = str(registry), str(registry)
    if as_json:
        print_json(report.to_json() | extra, click.echo)
        return
    click.echo(
        f"published {label} to {where} (sha256 {report.archive_sha256}), validated under"
        f" {report.policy_name}, statement signed by key {key.keyid[:16]}"
    )


def _publishing_config(
    config: MarketConfig, remote: HttpTarget | None, registry: Path | None
) -> MarketConfig:
    """The configured registries, with the target registry first when it has an index."""
    import dataclasses

    from ..config import RegistrySpec
    from ..index import INDEX_NAME

    if remote is not None:
        url = remote.url
    elif registry is not None and (registry / INDEX_NAME).is_file():
        url = str(registry.resolve())
    else:
        return config
    spec = RegistrySpec(name="publishing target", url=url)
    return dataclasses.replace(config, registries=(spec, *config.registries))


def _load_signing_key(path: Path) -> SigningKey:
    from pytest_cleanroom.attest.keys import KeyFileError, SigningKey

    from ..errors import MarketError

    try:
        return SigningKey.load(path)
    except KeyFileError as exc:
        raise MarketError(str(exc)) from None
