"""Real installs for the gpack-bundle tests: the `ggen` command, the embedded registry and local
directory registries built with `ggen market index`."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.conftest import ggen_env, run_ggen

SMOKE = "io.ggen.cleanroom.smoke"
SMOKE_VERSION = "0.1.0"
SMOKE_NODE = f"gpack:{SMOKE}@{SMOKE_VERSION}"
SMOKE_ITEM = f"{SMOKE_NODE}/scenarios/python-toolchain.scenario.toml::python-toolchain"

PROJECT_TEST = """\
def test_uses_the_pack_fixture(smoke_greeting, cleanroom):
    result = cleanroom.run(["sh", "-c", f"echo {smoke_greeting} > out.txt && cat out.txt"])
    result.assert_success()
    assert result.stdout == "cleanroom\\n"
"""


def ggen(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """Run the real ``ggen`` command with a private cache and no user configuration."""
    return run_ggen(*args, cwd=cwd, env=ggen_env(home))


def ggen_ok(*args: str, cwd: Path, home: Path) -> str:
    done = ggen(*args, cwd=cwd, home=home)
    assert done.returncode == 0, f"ggen {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def smoke_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory where ``ggen market add io.ggen.cleanroom.smoke`` ran (once per worker)."""
    base = tmp_path_factory.mktemp("smoke-install")
    project = base / "project"
    project.mkdir()
    ggen_ok("market", "add", SMOKE, cwd=project, home=base)
    return project


@pytest.fixture
def smoke_project(pytester: pytest.Pytester, smoke_install: Path) -> Path:
    """``pytester.path`` holding a copy of the installed smoke pack and its ``ggen.lock``."""
    shutil.copy2(smoke_install / "ggen.lock", pytester.path / "ggen.lock")
    shutil.copytree(smoke_install / ".ggen", pytester.path / ".ggen", symlinks=True)
    return pytester.path


def write_test_gpack(
    root: Path,
    pack_id: str,
    *,
    cleanroom: str = 'policy = "standard"',
    scenarios: Mapping[str, str] | None = None,
    fixtures: Mapping[str, str] | None = None,
    version: str = "1.0.0",
) -> Path:
    """A test gpack directory ``root/<id>`` with ``[cleanroom]``, scenarios and fixture modules."""
    path = root / pack_id
    path.mkdir(parents=True)
    manifest = f"""\
        [gpack]
        id = "{pack_id}"
        name = "{pack_id.rsplit(".", 1)[-1]}"
        version = "{version}"
        description = "a test gpack for the bundle tests"
        license = "MIT"
        category = "testing"
        ggen_compat = "*"

        [cleanroom]
        {cleanroom}

        [scenarios]
        patterns = ["scenarios/*.scenario.toml"]

        [fixtures]
        patterns = ["fixtures/*.py"]
        """
    (path / "gpack.toml").write_text(textwrap.dedent(manifest))
    for folder, files in (("scenarios", scenarios or {}), ("fixtures", fixtures or {})):
        (path / folder).mkdir()
        for name, text in files.items():
            (path / folder / name).write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def install_packs(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., None]:
    """``install_packs(project, *pack_dirs)``: index the packs as a local directory registry and
    ``ggen market add`` every one of them into ``project``."""

    def install(project: Path, *packs: Path) -> None:
        home = tmp_path_factory.mktemp("registry")
        registry = home / "registry"
        registry.mkdir()
        for pack in packs:
            shutil.copytree(pack, registry / pack.name)
        ggen_ok("market", "index", str(registry), cwd=home, home=home)
        ids = [pack.name for pack in packs]
        ggen_ok("market", "add", *ids, "--registry", str(registry), cwd=project, home=home)

    return install
