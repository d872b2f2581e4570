"""``ggen test list`` / ``ggen test run``: installed test gpacks' scenarios, without a test file.

``run`` hands pytest (with the cleanroom plugin, in this process) the project's pinned test
gpacks and keeps only the items of the pack (and scenario) asked for, so each runs under its
pack's floor, with its fixtures, exactly as a plain ``pytest`` in the project would run it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .cli import json_command, project_option
from .errors import MarketError
from .output import print_json

if TYPE_CHECKING:
    import pytest

    from .testpack import InstalledTestPack


class TestPackError(MarketError):
    """An unknown test gpack or scenario, or a project without any."""

    __test__ = False  # not a pytest test class


@dataclass(frozen=True)
class Offered:
    """One runnable scenario (one matrix row) of an installed test gpack."""

    pack: str
    version: str
    scenario: str
    variant: str
    file: str

    @property
    def ref(self) -> str:
        return f"{self.pack}:{self.variant}"


def offered(pack: InstalledTestPack) -> list[Offered]:
    """Every scenario variant ``pack`` ships, in file order."""
    from .testpack import load_scenario

    found = []
    for path in pack.scenarios:
        rel = path.relative_to(pack.root).as_posix()
        for variant in load_scenario(path):
            found.append(Offered(pack.id, pack.version, variant.scenario.name, variant.id, rel))
    return found


def find_pack(project: Path, pack_id: str) -> InstalledTestPack:
    from pytest_cleanroom.config_errors.suggest import did_you_mean

    from .testpack import installed_test_packs

    packs = installed_test_packs(project)
    for pack in packs:
        if pack.id == pack_id:
            return pack
    ids = [p.id for p in packs]
    have = f"; installed test gpacks: {', '.join(ids)}" if ids else ""
    raise TestPackError(
        f"{pack_id}: not a test gpack installed in {project}"
        f"{did_you_mean(pack_id, ids, aside=True)}{have}"
        f" (install one with `ggen market add {pack_id}`)"
    )


@click.group()
def test() -> None:
    """Run and list the scenarios of the test gpacks installed in a project."""


@test.command(name="list", short_help="List installed test gpacks, their scenarios and fixtures.")
@project_option
@json_command
def list_(project: Path, as_json: bool) -> None:
    """List installed test gpacks: policy floor, scenarios (ID:SCENARIO), fixture modules."""
    from .testpack import installed_test_packs

    root = project.resolve()
    packs = installed_test_packs(root)
    rows = [(pack, offered(pack)) for pack in packs]
    if as_json:
        print_json({"ok": True, "packs": [_pack_json(p, o) for p, o in rows]}, click.echo)
        return
    if not packs:
        click.echo("no test gpacks installed (see `ggen market add io.ggen.cleanroom.smoke`)")
    for pack, scenarios in rows:
        click.echo(
            f"{pack.id} {pack.version}  (floor {pack.cleanroom.level}, {len(scenarios)}"
            f" scenario(s), {len(pack.fixtures)} fixture module(s))"
        )
        for item in scenarios:
            click.echo(f"  {item.ref:<56} {item.file}")


def _pack_json(pack: InstalledTestPack, scenarios: list[Offered]) -> dict[str, Any]:
    return {
        "id": pack.id,
        "version": pack.version,
        "floor": pack.cleanroom.level,
        "scenarios": [
            {"ref": s.ref, "name": s.scenario, "variant": s.variant, "file": s.file}
            for s in scenarios
        ],
        "fixtures": [f.relative_to(pack.root).as_posix() for f in pack.fixtures],
    }


@test.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    short_help="Run an installed test gpack's scenarios through pytest.",
)
@click.argument("ref", metavar="ID[:SCENARIO]")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED, metavar="[PYTEST OPTIONS]")
@project_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON document (every item's outcome); pytest's own output goes to stderr.",
)
def run(ref: str, pytest_args: tuple[str, ...], project: Path, as_json: bool) -> None:
    """Run the scenarios of an installed test gpack (all, or the one named) with pytest, the
    cleanroom plugin, the pack's fixtures and its policy floor; exit with pytest's status.

    Options after ID[:SCENARIO] go to pytest (e.g. -v, -x, --cleanroom-policy=locked).
    """
    root = project.resolve()
    pack_id, _, scenario = ref.partition(":")
    try:
        pack = find_pack(root, pack_id)
        if scenario:
            _check_scenario(pack, scenario)
    except MarketError as exc:
        if as_json:
            print_json({"ok": False, "error": str(exc), "kind": type(exc).__name__}, click.echo)
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    select = _Select(pack.id, scenario or None)
    if not as_json:
        sys.exit(run_pytest(root, select, list(pytest_args)))
    with contextlib.redirect_stdout(sys.stderr):
        status = run_pytest(root, select, list(pytest_args))
    passed = status == 0
    print_json({"ok": passed, "exit_code": status, "pack": pack.id, "version": pack.version,
                "scenario": scenario or None, "items": select.outcomes}, click.echo)  # fmt: skip
    sys.exit(status)


def _check_scenario(pack: InstalledTestPack, scenario: str) -> None:
    from pytest_cleanroom.config_errors.suggest import did_you_mean

    names = [o.scenario for o in offered(pack)] + [o.variant for o in offered(pack)]
    if scenario not in names:
        raise TestPackError(
            f"{pack.id}: no scenario {scenario!r}{did_you_mean(scenario, names, aside=True)};"
            f" it has {', '.join(dict.fromkeys(names)) or 'none'} (see `ggen test list`)"
        )


def run_pytest(project: Path, select: _Select, extra: list[str]) -> int:
    """pytest over the scenarios ``select`` keeps; its exit status."""
    import pytest

    # An empty directory as the only path: the project's own tests are not collected, its
    # conftest.py and ini still apply, and --cleanroom-gpacks collects the packs' scenarios.
    holder = Path(tempfile.mkdtemp(prefix="test-run-", dir=project / ".ggen"))
    try:
        args = ["--cleanroom-gpacks", "--cleanroom-gpack-project", str(project),
                "--rootdir", str(project), *extra, str(holder)]  # fmt: skip
        previous = Path.cwd()
        os.chdir(project)
        try:
            return int(pytest.main(args, plugins=[select]))
        finally:
            os.chdir(previous)
    finally:
        shutil.rmtree(holder, ignore_errors=True)


class _Select:
    """Keeps the items of one pack (and one scenario); deselects the rest."""

    def __init__(self, pack_id: str, scenario: str | None) -> None:
        self.prefix = f"gpack:{pack_id}@"
        self.scenario = scenario
        #: ``{"nodeid", "outcome", "duration"}`` of every item that ran (for ``--json``).
        self.outcomes: list[dict[str, Any]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or report.outcome != "passed":  # and setup/teardown trouble
            self.outcomes.append({"nodeid": report.nodeid, "when": report.when,
                                  "outcome": report.outcome,
                                  "duration": round(report.duration, 3)})  # fmt: skip

    def _wanted(self, item: pytest.Item) -> bool:
        if not item.nodeid.startswith(self.prefix):
            return False
        variant = getattr(item, "variant", None)
        if self.scenario is None or variant is None:
            return self.scenario is None
        return self.scenario in (variant.scenario.name, variant.id)

    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        keep = [i for i in items if self._wanted(i)]
        dropped = [i for i in items if not self._wanted(i)]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep
