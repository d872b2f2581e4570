"""``ggen attest``: verify attestation directories, make signing keys.

Also runnable as ``python -m pytest_cleanroom.attest``. Exit status: 0 when everything verified,
1 when anything failed (every failure names its file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from .verify import FileCheck, Verification


@click.group()
def attest() -> None:
    """Make signing keys; verify attestations written by pytest --cleanroom-attest=DIR."""


@attest.command()
@click.argument("target", type=click.Path(path_type=Path))
@click.option(
    "--key",
    "key",
    type=click.Path(path_type=Path),
    help="Trusted ed25519 public key (PEM). Default: the cleanroom-attest.pub beside the "
    "envelopes, which proves integrity but not who signed.",
)
@click.option(
    "--workspace",
    type=click.Path(path_type=Path),
    help="Check subjects' digests in this directory instead of the workspace each test recorded.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def verify(target: Path, key: Path | None, workspace: Path | None, as_json: bool) -> None:
    """Verify TARGET: a directory of envelopes, or one envelope file.

    Checks every signature, the canonical form of every envelope, that the run statement lists
    exactly the envelopes present, and (where the workspace exists) every output's and input's
    sha256.
    """
    from .verify import verify as run_verify

    if as_json:
        report = run_verify(target, key=key, workspace=workspace)
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        shown: set[int] = set()

        def show(check: FileCheck) -> None:
            shown.add(id(check))
            _print_check(check)

        report = run_verify(target, key=key, workspace=workspace, progress=show)
        for check in report.checks:
            if id(check) not in shown:
                _print_check(check)
        _print_summary(report)
    raise SystemExit(0 if report.ok else 1)


@attest.command(short_help="Merge the attestations of a run's shards into one signed proof.")
@click.argument(
    "shard_dirs", nargs=-1, required=True, type=click.Path(path_type=Path, file_okay=False)
)
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="New directory for the merged attestation (copies of the shards, run.intoto.json).",
)
@click.option(
    "--key",
    "key",
    type=click.Path(path_type=Path, dir_okay=False),
    help="ed25519 private key (PEM) signing the merged statement. Default: a key made for the "
    "merge, whose public half is written into OUT.",
)
@click.option(
    "--shard-key",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Trusted public key (PEM) every shard must be signed with. Default: the key beside "
    "each shard's envelopes.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def merge(
    shard_dirs: tuple[Path, ...], out: Path, key: Path | None, shard_key: Path | None, as_json: bool
) -> None:
    """Merge SHARD_DIR... (each written by pytest --cleanroom-shard=K/N --cleanroom-attest=DIR).

    Every shard is verified; the shards must be all N shards of one run (same run id,
    collection, durations and seed), none twice, no test in two shards. Then OUT gets a copy of
    each and one signed statement over all of them; `ggen attest verify OUT` checks it all again.
    """
    from .keys import KeyFileError
    from .merge import MergeError
    from .merge import merge as run_merge

    try:
        result = run_merge(list(shard_dirs), out, key_path=key, shard_key=shard_key)
    except (MergeError, KeyFileError) as exc:
        problems = exc.problems if isinstance(exc, MergeError) else [str(exc)]
        if as_json:
            click.echo(json.dumps({"ok": False, "problems": problems}, indent=2))
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        raise SystemExit(1) from None
    passed = sum(len(s.passed) for s in result.shards)
    failed = sum(len(s.failed) for s in result.shards)
    if as_json:
        data = {
            "ok": True,
            "directory": str(out),
            "keyid": result.keyid,
            "shards": [str(s.directory) for s in result.shards],
            "passed": passed,
            "failed": failed,
            "files": ["run.intoto.json", *result.files],
        }
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(
        f"merged {len(result.shards)} shards ({passed} passed, {failed} failed) into {out}, "
        f"signed by key {result.keyid[:16]}"
    )
    click.echo(f"verify: ggen attest verify {out}")


@attest.command(short_help="Make an ed25519 key pair: PATH (private) and PATH.pub.")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the key id and file names as JSON.")
def keygen(path: Path, as_json: bool) -> None:
    """Make an ed25519 key pair: PATH (private, mode 0600) and PATH.pub (public).

    Pass PATH to pytest with --cleanroom-signing-key and PATH.pub to `ggen attest verify --key`.
    """
    from .keys import KeyFileError, SigningKey, write_key_pair

    key = SigningKey.generate()
    try:
        public = write_key_pair(key, path)
    except (KeyFileError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        data = {"private": str(path), "public": str(public), "keyid": key.keyid}
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(f"private key {path} (keep it secret)")
        click.echo(f"public key  {public}")
        click.echo(f"key id      {key.keyid}")


def _print_check(check: FileCheck) -> None:
    label = "ok  " if check.ok else "FAIL"
    detail = str(check.nodeid if check.kind == "test" else check.kind)
    if check.kind == "validation":
        detail = f"{check.nodeid} validation"
    if check.kind == "test":
        detail += f", {check.checked_files} workspace files checked"
    if check.summary:
        s = check.summary
        detail += f": {s['result']} ({s['passed']} passed, {s['failed']} failed)"
    click.echo(f"{label}  {Path(check.file).name}  [{detail}]")
    for note in check.notes:
        click.echo(f"      note: {note}")


def _print_summary(report: Verification) -> None:
    failures = report.failures()
    for message in failures:
        click.echo(f"error: {message}", err=True)
    key = f"key {report.keyid[:16]} from {report.key_source}" if report.keyid else "no key"
    problems = "1 problem" if len(failures) == 1 else f"{len(failures)} problems"
    verdict = "verified" if report.ok else f"FAILED ({problems})"
    click.echo(f"{verdict}: {len(report.checks)} envelopes in {report.target}, {key}")
