"""What a run refuses: tampered or missing packs, clashing fixtures, broken fixture modules; and
what it costs when there is no ggen.lock (nothing)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import PROJECT_TEST, SMOKE, ggen, write_test_gpack

pytestmark = pytest.mark.integration

FIX = (
    "run `ggen market verify` to see the state of every pack, then `ggen market add` to "
    "reinstall exactly what ggen.lock pins"
)


def installed(project: Path) -> Path:
    return project / ".ggen/packages" / SMOKE / "0.1.0"


def tamper_edit(root: Path) -> None:
    scenario = root / "scenarios/python-toolchain.scenario.toml"
    scenario.write_text(scenario.read_text().replace("print('ready')", "print('owned')"))


def tamper_add(root: Path) -> None:
    (root / "fixtures/extra.py").write_text("import pytest\n")


def tamper_mode(root: Path) -> None:
    (root / "fixtures/smoke_fixtures.py").chmod(0o755)


@pytest.mark.parametrize(
    "tamper", [tamper_edit, tamper_add, tamper_mode], ids=["edit", "add", "chmod"]
)
def test_a_tampered_pack_is_one_clear_error(
    pytester: pytest.Pytester, smoke_project: Path, tamper: Callable[[Path], None]
) -> None:
    pytester.makepyfile(test_project=PROJECT_TEST)
    tamper(installed(smoke_project))
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.errlines
    assert errors[0].startswith(
        f"ERROR: cleanroom gpacks: test gpack {SMOKE}@0.1.0 at {installed(smoke_project)} does "
        "not match ggen.lock (tree sha256 "
    )
    assert errors[0].endswith(f"its installed files were changed; {FIX}")
    assert "passed" not in result.stdout.str()  # nothing ran, not even the project's test


def test_a_missing_pack_names_the_install_command(
    pytester: pytest.Pytester, smoke_project: Path
) -> None:
    root = installed(smoke_project)
    root.rename(root.with_name("moved"))
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: cleanroom gpacks: test gpack {SMOKE}@0.1.0 is pinned in "
         f"{smoke_project / 'ggen.lock'} but not installed at {root}; run `ggen market add` to "
         "install what ggen.lock pins"]
    )  # fmt: skip


def test_a_malformed_lock_names_the_file(pytester: pytest.Pytester, smoke_project: Path) -> None:
    lock = smoke_project / "ggen.lock"
    lock.write_text(lock.read_text().replace("format = 1", "format = [1"))
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: cleanroom gpacks: {lock}: not valid TOML (*"])


PROBE = """
import json, os, sys
for name in os.environ.get("HIDE_MODULES", "").split():
    sys.modules[name] = None  # as if the package were not installed
import pytest
code = pytest.main(sys.argv[1:])
heavy = ("ggen_market.lockfile", "ggen_market.archive", "rdflib", "httpx", "jinja2", "yaml",
         "semver", "ggen_market.gpack_bundles.loader", "ggen_market.gpack_bundles.collect")
print("LOADED=" + json.dumps([m for m in heavy if m in sys.modules]))
raise SystemExit(code)
"""


def probe(project: Path, *args: str, hide: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "HIDE_MODULES": hide},
    )


def loaded_modules(project: Path, *args: str) -> list[str]:
    done = probe(project, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("LOADED="))
    loaded: list[str] = json.loads(line.removeprefix("LOADED="))
    return loaded


def test_without_a_lockfile_the_plugin_is_inert(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    assert loaded_modules(pytester.path) == []
    # A .ggen directory without ggen.lock is not a reason to load anything either.
    (pytester.path / ".ggen/packages").mkdir(parents=True)
    assert loaded_modules(pytester.path, "--cleanroom-gpacks") == []


def test_with_a_lockfile_only_the_light_part_of_ggen_market_loads(
    pytester: pytest.Pytester, smoke_project: Path
) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    loaded = loaded_modules(smoke_project, "-m", "not gpack")
    assert "ggen_market.lockfile" in loaded
    assert not {"rdflib", "httpx", "jinja2", "yaml"} & set(loaded), loaded


def test_without_the_market_dependencies(pytester: pytest.Pytester, smoke_project: Path) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    # semver comes with the market extra; without it, only a lockfile makes that a problem.
    done = probe(smoke_project, hide="semver")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert (
        f"ERROR: cleanroom gpacks: {smoke_project / 'ggen.lock'} pins gpacks but ggen_market "
        "cannot be imported (import of semver halted; None in sys.modules); install it with "
        "`pip install 'pytest-cleanroom[market]'`, or run with --no-cleanroom-gpacks"
    ) in done.stderr
    assert probe(smoke_project, "--no-cleanroom-gpacks", hide="semver").returncode == 0
    (smoke_project / "ggen.lock").unlink()
    assert probe(smoke_project, hide="semver").returncode == 0


FIXTURE = """\
import pytest

@pytest.fixture
def {name}():
    return {value!r}
"""


def two_packs_defining(tmp_path: Path, name: str) -> tuple[Path, Path]:
    return (
        write_test_gpack(
            tmp_path, "io.example.alpha", fixtures={"a.py": FIXTURE.format(name=name, value="a")}
        ),
        write_test_gpack(
            tmp_path, "io.example.beta", fixtures={"b.py": FIXTURE.format(name=name, value="b")}
        ),
    )


def test_two_packs_defining_one_fixture_is_an_error_naming_both(
    pytester: pytest.Pytester, tmp_path: Path, install_packs: Callable[..., None]
) -> None:
    alpha, beta = two_packs_defining(tmp_path, "shared_db")
    install_packs(pytester.path, alpha, beta)
    pytester.makepyfile(test_x="def test_x(shared_db):\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    packages = pytester.path / ".ggen/packages"
    result.stderr.fnmatch_lines(
        [
            "ERROR: cleanroom gpacks: fixture 'shared_db' is defined by both "
            f"gpack io.example.alpha@1.0.0 ({packages}/io.example.alpha/1.0.0/fixtures/a.py) and "
            f"gpack io.example.beta@1.0.0 ({packages}/io.example.beta/1.0.0/fixtures/b.py); "
            "pytest would silently use only one of them.*"
        ]
    )


def test_a_pack_cannot_replace_a_plugin_or_root_conftest_fixture(
    pytester: pytest.Pytester, tmp_path: Path, install_packs: Callable[..., None]
) -> None:
    pack = write_test_gpack(
        tmp_path,
        "io.example.greedy",
        fixtures={"f.py": FIXTURE.format(name="cleanroom", value="not a sandbox")},
    )
    install_packs(pytester.path, pack)
    pytester.makepyfile(test_x="def test_x(cleanroom):\n    cleanroom.run(['true'])\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: cleanroom gpacks: fixture 'cleanroom' is defined by both the plugin "
            "'cleanroom.pytest_plugin.core' and gpack io.example.greedy@1.0.0 (*/f.py)*"
        ]
    )


def test_conftest_fixtures_and_the_pack(
    pytester: pytest.Pytester, tmp_path: Path, install_packs: Callable[..., None]
) -> None:
    pack = write_test_gpack(
        tmp_path, "io.example.data", fixtures={"f.py": FIXTURE.format(name="dataset", value="pack")}
    )
    install_packs(pytester.path, pack)
    # A conftest.py below the rootdir overrides the pack's fixture for its directory, as usual.
    pytester.mkpydir("sub")
    (pytester.path / "sub/conftest.py").write_text(FIXTURE.format(name="dataset", value="local"))
    (pytester.path / "sub/test_sub.py").write_text(
        "def test_sub(dataset):\n    assert dataset == 'local'\n"
    )
    pytester.makepyfile(test_top="def test_top(dataset):\n    assert dataset == 'pack'\n")
    pytester.runpytest().assert_outcomes(passed=2)
    # One at the rootdir has the pack's visibility: which of the two wins is not defined.
    pytester.makeconftest(FIXTURE.format(name="dataset", value="root"))
    clash = pytester.runpytest()
    assert clash.ret == pytest.ExitCode.USAGE_ERROR
    clash.stderr.fnmatch_lines(
        [
            f"ERROR: cleanroom gpacks: fixture 'dataset' is defined by both the conftest.py "
            f"{pytester.path / 'conftest.py'} and gpack io.example.data@1.0.0 *"
        ]
    )


def test_a_broken_fixtures_module_names_its_line(
    pytester: pytest.Pytester, tmp_path: Path, install_packs: Callable[..., None]
) -> None:
    broken = write_test_gpack(
        tmp_path,
        "io.example.broken",
        fixtures={"ok.py": FIXTURE.format(name="fine", value=1), "bad.py": "import os\n1 / 0\n"},
    )
    install_packs(pytester.path, broken)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    bad = pytester.path / ".ggen/packages/io.example.broken/1.0.0/fixtures/bad.py"
    result.stderr.fnmatch_lines(
        [
            f"ERROR: cleanroom gpacks: {bad}:2: importing the fixtures module of gpack "
            "io.example.broken@1.0.0 failed: ZeroDivisionError: division by zero"
        ]
    )


def test_a_scenario_the_runner_rejects_is_refused_when_the_pack_is_indexed(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    # The market validates scenario files with the runner's own parser, so a pack whose scenario
    # pytest could not run never reaches a project: the error names the file and the line.
    good = '[scenario]\nname = "good"\n\n[[steps]]\nname = "ok"\nrun = "true"\n'
    bad = '[scenario]\nname = "bad"\n\n[[steps]]\nname = "ref"\nrun = "echo ${matrix.nope}"\n'
    pack = write_test_gpack(
        tmp_path,
        "io.example.half",
        scenarios={"good.scenario.toml": good, "bad.scenario.toml": bad},
    )
    home = tmp_path / "home"
    registry = home / "registry"
    registry.mkdir(parents=True)
    shutil.copytree(pack, registry / pack.name)
    done = ggen("market", "index", str(registry), cwd=home, home=home)
    assert done.returncode != 0
    bad_path = registry / pack.name / "scenarios" / "bad.scenario.toml"
    assert f"{bad_path}:6: ${{matrix.nope}} is not a matrix key" in done.stdout + done.stderr
    assert not (pytester.path / "ggen.lock").exists()
