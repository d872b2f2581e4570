"""The release artefacts: ``python -m build`` makes an sdist and a wheel that pass ``twine check``.

Both are built from this checkout without network access (``--no-isolation``: the build backend
comes from the dev extra). The wheel is then rebuilt from the sdist alone, as a downstream
packager would, and must carry the same modules, entry points and embedded example registry.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import require

REPO = Path(__file__).resolve().parents[3]
EMBEDDED = "ggen_market/_embedded/example_gpacks"


def _run(*cmd: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, f"{cmd} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _build(source: Path, out: Path, *what: str) -> None:
    _run(sys.executable, "-m", "build", "--no-isolation", *what, "--outdir", out, source)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for module, extra in (("build", "build"), ("twine", "twine"), ("hatchling", "hatchling")):
        require(importlib.util.find_spec(module) is not None, f"{extra} (pip install -e '.[dev]')")
    out = tmp_path_factory.mktemp("dist")
    _build(REPO, out)
    return out


def _only(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {folder}, found {found}"
    return found[0]


def test_sdist_and_wheel_pass_twine_check(dist: Path) -> None:
    sdist = _only(dist, "pytest_cleanroom-*.tar.gz")
    wheel = _only(dist, "pytest_cleanroom-*-py3-none-any.whl")
    report = _run(sys.executable, "-m", "twine", "check", "--strict", sdist, wheel)
    assert report.count("PASSED") == 2, report


def test_sdist_leaves_out_local_state(dist: Path) -> None:
    with tarfile.open(_only(dist, "*.tar.gz")) as archive:
        names = archive.getnames()
    top = {name.split("/")[1] for name in names if name.count("/") >= 1}
    assert {"src", "pyproject.toml", "README.md", "example_gpacks"} <= top
    assert not top & {".venv", ".git", ".ggen", ".cache", "dist", "build"}, sorted(top)


def test_wheel_rebuilt_from_the_sdist_alone_is_complete(dist: Path, tmp_path: Path) -> None:
    with tarfile.open(_only(dist, "*.tar.gz")) as archive:
        archive.extractall(tmp_path, filter="data")
    unpacked = _only(tmp_path, "pytest_cleanroom-*")
    _build(unpacked, tmp_path / "out", "--wheel")
    with zipfile.ZipFile(_only(tmp_path / "out", "*.whl")) as wheel:
        names = set(wheel.namelist())
        entry_points = next(
            wheel.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt")
        )
    for package in ("pytest_cleanroom", "ggen_market", "ggen_lifecycle", "ggen_cli"):
        assert f"{package}/__init__.py" in names, package
        assert f"{package}/py.typed" in names, package
    packs = sorted(p.name for p in (REPO / "example_gpacks").iterdir() if p.is_dir())
    assert {f"{EMBEDDED}/{pack}/gpack.toml" for pack in packs} <= names
    assert "cleanroom = pytest_cleanroom.plugin" in entry_points
    assert "ggen = ggen_cli.__main__:console" in entry_points


def test_pip_installs_it_from_a_git_url(tmp_path: Path) -> None:
    # The README's third way in: pip clones the repository and builds the wheel itself.
    require(shutil.which("git") is not None, "git (apt-get install git)")
    require(
        importlib.util.find_spec("hatchling") is not None, "hatchling (pip install -e '.[dev]')"
    )
    site = tmp_path / "site"
    _run(sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", site, f"pytest-cleanroom @ git+file://{REPO}")  # fmt: skip
    [info] = site.glob("pytest_cleanroom-*.dist-info")
    assert "cleanroom = pytest_cleanroom.plugin" in (info / "entry_points.txt").read_text()
    assert (site / "pytest_cleanroom" / "plugin.py").is_file()
    packs = sorted(p.name for p in (REPO / "example_gpacks").iterdir() if p.is_dir())
    assert sorted(p.parent.name for p in (site / EMBEDDED).glob("*/gpack.toml")) == packs


USE_ENGINE_CACHES = (
    "import pytest_cleanroom, sys;"
    " from pytest_cleanroom.backends import _nsinit_build, _seccomp;"
    " path, why = _nsinit_build.program();"
    " assert path, why;"
    " print(pytest_cleanroom.__file__);"
    " print(path);"
    " print(_seccomp.program_file('strict', forbid_namespaces=True))"
)


def test_pip_uninstall_leaves_nothing_behind_after_use(dist: Path, tmp_path: Path) -> None:
    # What the engine builds at run time (the compiled set-up step, seccomp programs) goes to
    # the user's cache, never into the installed package, which pip would leave behind.
    require(shutil.which("gcc") is not None, "gcc (apt-get install gcc)")
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    [site] = venv.glob("lib/python*/site-packages")
    # The dependencies come from this environment, appended after the venv's own packages.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    before = sorted(p.relative_to(venv) for p in venv.rglob("*"))
    pip = (sys.executable, "-m", "pip", "--python", python)
    _run(*pip, "install", "-q", "--no-deps", "--no-index", _only(dist, "*.whl"))
    cache = tmp_path / "cache"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "XDG_CACHE_HOME": str(cache)}
    done = subprocess.run([python, "-c", USE_ENGINE_CACHES], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    module, nsinit, seccomp = done.stdout.split()
    assert Path(module).is_relative_to(site)  # the installed wheel ran, not this checkout
    assert Path(nsinit).parent == Path(seccomp).parent == cache / "pytest-cleanroom"
    _run(*pip, "uninstall", "-q", "-y", "pytest-cleanroom")
    after = sorted(p.relative_to(venv) for p in venv.rglob("*"))
    assert after == before
