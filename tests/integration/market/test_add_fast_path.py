"""``ggen market add`` runs without click, and prints, exits and installs as the click command does.

Each case runs a real ``ggen`` process twice in twin directories: once as users run it (the
click-free path of :mod:`ggen_market.add_command`) and once through the click group directly.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ggen_env

from .conftest import HttpRegistry, ggen, write_gpack

# Runs ggen as the console script does; argv[1] gets the names of the modules loaded.
AS_USERS_RUN_IT = """
import json, sys
out = sys.argv.pop(1)
from ggen_cli.__main__ import main
code = main(sys.argv[1:])
with open(out, "w") as f:
    json.dump(sorted(sys.modules), f)
sys.exit(code)
"""
THROUGH_CLICK = """
import sys
from ggen_cli.__main__ import root_group
root_group().main(args=sys.argv[1:], prog_name="ggen")
"""


def run(root: Path, script: str, *args: str) -> tuple[int, str, str, set[str]]:
    """Run ``ggen ARGS`` in ``root/project`` against ``root/registry``; paths shown as ROOT."""
    env = ggen_env(root)
    listing = root / "modules.json"
    extra = [str(listing)] if "json.dump" in script else []
    args = tuple(a.replace("ROOT", str(root)) for a in args)
    done = subprocess.run(
        [sys.executable, "-c", script, *extra, *args],
        cwd=root / "project",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    modules = set(json.loads(listing.read_text())) if listing.exists() else set()
    show = str(root)
    return (
        done.returncode,
        done.stdout.replace(show, "ROOT"),
        done.stderr.replace(show, "ROOT"),
        modules,
    )


@pytest.fixture
def twins(tmp_path: Path) -> tuple[Path, Path]:
    roots = (tmp_path / "fast", tmp_path / "click")
    for root in roots:
        registry = root / "registry"
        write_gpack(registry, "io.fast.base", "1.0.0")
        write_gpack(registry, "io.fast.app", "1.2.0", deps={"io.fast.base": "^1"})
        assert ggen("market", "index", str(registry)).exit_code == 0
        (root / "project").mkdir()
    return roots


def lock_text(root: Path) -> str:
    """Every ggen.lock under ``root`` (the project's, or the one --project named)."""
    return "\n".join(
        f"{lock.relative_to(root)}:\n{lock.read_text().replace(str(root), 'ROOT')}"
        for lock in sorted(root.rglob("ggen.lock"))
    )


@pytest.mark.parametrize(
    "args",
    [
        ("io.fast.app", "--registry", "ROOT/registry"),
        ("io.fast.app@^1.2", "--registry=ROOT/registry", "--json", "--no-progress"),
        ("io.fast.ap", "--registry", "ROOT/registry"),  # did you mean
        ("io.fast.ap", "--registry", "ROOT/registry", "--json"),
        ("io.fast.app@", "--registry", "ROOT/registry"),  # nothing after '@'
        ("io.fast.app", "--registry", "ROOT/missing", "--offline"),
        ("io.fast.app", "--registry", "ROOT/registry", "--project", "ROOT/nowhere/deep"),
    ],
)
def test_add_without_click_matches_the_click_command(
    twins: tuple[Path, Path], args: tuple[str, ...]
) -> None:
    fast_root, click_root = twins
    code, out, err, modules = run(fast_root, AS_USERS_RUN_IT, "market", "add", *args)
    assert "click" not in modules, "ggen market add took the click path"
    assert (code, out, err) == run(click_root, THROUGH_CLICK, "market", "add", *args)[:3]
    assert lock_text(fast_root) == lock_text(click_root)
    if code == 0:
        assert "io.fast.base" in lock_text(fast_root)


def test_a_second_add_with_the_lock_reports_nothing_to_install(twins: tuple[Path, Path]) -> None:
    fast_root, click_root = twins
    args = ("market", "add", "io.fast.app", "--registry", "ROOT/registry")
    for root in twins:
        assert run(root, THROUGH_CLICK, *args)[0] == 0
    fast = run(fast_root, AS_USERS_RUN_IT, "market", "add", "--registry", "ROOT/registry")
    assert "click" not in fast[3]
    assert (
        fast[:3]
        == run(click_root, THROUGH_CLICK, "market", "add", "--registry", "ROOT/registry")[:3]
    )
    assert "nothing to install: 2 gpack(s) already as ggen.lock pins" in fast[1]


@pytest.mark.parametrize("args", [("--help",), ("io.fast.app", "--timeout", "soon")])
def test_help_and_usage_errors_come_from_click(
    twins: tuple[Path, Path], args: tuple[str, ...]
) -> None:
    fast_root, click_root = twins
    code, out, err, modules = run(fast_root, AS_USERS_RUN_IT, "market", "add", *args)
    assert "click" in modules
    assert (code, out, err) == run(click_root, THROUGH_CLICK, "market", "add", *args)[:3]
    assert code == (0 if args == ("--help",) else 2)


@pytest.mark.parametrize("script", [AS_USERS_RUN_IT, THROUGH_CLICK], ids=["fast", "click"])
def test_ctrl_c_during_a_download_aborts_cleanly(
    tmp_path: Path, http_registry: HttpRegistry, script: str
) -> None:
    write_gpack(tmp_path / "src", "io.fast.app", "1.0.0")
    assert (
        ggen(
            "market", "index", str(tmp_path / "src"), "-o", str(http_registry.control.root)
        ).exit_code
        == 0
    )
    http_registry.control.delay = 30.0  # the index request hangs until the test interrupts it
    (tmp_path / "project").mkdir()
    env = ggen_env(tmp_path)
    extra = [str(tmp_path / "modules.json")] if script is AS_USERS_RUN_IT else []
    args = ["market", "add", "io.fast.app", "--registry", http_registry.url]
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *extra, *args],
        cwd=tmp_path / "project",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    state = tmp_path / "project" / ".ggen"
    deadline = time.monotonic() + 60
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # .ggen appears when the install transaction starts
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert err.endswith("\nAborted!\n"), err
    assert out == ""
    assert sorted(p.name for p in (tmp_path / "project").iterdir()) == []
    if extra:
        # httpx imports click itself; the click command module stays unloaded
        assert "ggen_market.cli" not in json.loads(Path(extra[0]).read_text())


def test_the_garbage_collector_is_back_on_after_the_imports(twins: tuple[Path, Path]) -> None:
    script = AS_USERS_RUN_IT.replace(
        "sys.exit(code)", "import gc\nprint('gc enabled:', gc.isenabled())\nsys.exit(code)"
    )
    code, out, err, modules = run(twins[0], script, "market", "add", "--registry", "ROOT/registry")
    assert code == 0, err
    assert "ggen_market.cli" not in modules
    assert out.endswith("gc enabled: True\n")
