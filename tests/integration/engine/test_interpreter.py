"""The Python running the engine works in its sandboxes at every level, even when it lives in a
directory the policy hides; a program the policy hides says so instead of "command not found".

The engine runs in a real venv made for the test under pytest's temporary directory, which every
sandbox hides (private ``/tmp``): ``sys.executable`` is a link in a hidden directory, leading to
this interpreter's installation (under ``/root/.pyenv`` on the development machine, hidden too).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest

from pytest_cleanroom.environment import FIXED_PATH
from tests.integration.engine.conftest import LOCAL_BACKENDS, require_backend

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]

SCRIPT = """
import json, sys
from pytest_cleanroom import Cleanroom, Policy
out = {}
for level in ("permissive", "standard", "strict", "locked"):
    with Cleanroom(sys.argv[1] + "/" + level, policy=level, backend=sys.argv[2]) as room:
        me = room.run([sys.executable, "-c", "import sys; print(sys.prefix)"])
        cli = room.run(["hello-cli"])
        out[level] = [me.exit_code, me.stdout.strip(), me.stderr, cli.exit_code, cli.stdout]
        out[level + "-path"] = room.run("echo $PATH").stdout.strip()
closed = Policy.level("standard").replace(interpreter_readable=False)
with Cleanroom(sys.argv[1] + "/closed", policy=closed, backend=sys.argv[2]) as room:
    me = room.run([sys.executable, "-c", "pass"])
    cli = room.run(["hello-cli"])
    out["closed"] = [me.exit_code, me.stderr, cli.exit_code, cli.stderr, me.policy_name]
print(json.dumps(out))
"""


def make_venv(path: Path, *, called: Path | None = None) -> Path:
    """A venv of this interpreter at ``path`` (its ``python`` a link), with a console script
    whose ``#!`` line names the venv as ``called`` (default ``path``); returns ``called``."""
    called = called or path
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    assert (path / "bin" / "python").is_symlink()
    script = path / "bin" / "hello-cli"
    script.write_text(
        f"#!{called / 'bin' / 'python'}\nimport sys\nprint('hello from', sys.prefix)\n"
    )
    script.chmod(0o755)
    return called


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_venv(tmp_path_factory.mktemp("hidden") / "venv")


@pytest.fixture(scope="module")
def linked_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project's ``.venv`` that is itself a link to the venv's real directory elsewhere (as
    tools that keep their venvs in a cache make it), called by the link's path."""
    base = tmp_path_factory.mktemp("linked")
    (base / "project").mkdir()
    (base / "venvs").mkdir()
    (base / "project" / ".venv").symlink_to("../venvs/project-1a2b")
    return make_venv(base / "venvs" / "project-1a2b", called=base / "project" / ".venv")


def engine_in(venv: Path, tmp_path: Path, backend: str) -> dict[str, list[object]]:
    """Run SCRIPT with ``venv``'s Python (called by the venv's path, links kept)."""
    require_backend(backend)
    site_packages = Path(pydantic.__file__).resolve().parents[1]
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", SCRIPT, str(tmp_path), backend],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO / 'src'}:{site_packages}"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, list[object]] = json.loads(done.stdout.splitlines()[-1])
    return out


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_the_engines_python_and_its_console_scripts_work_at_every_level(
    venv: Path, tmp_path: Path, backend: str
) -> None:
    out = engine_in(venv, tmp_path, backend)
    assert_works_at_every_level(out, venv)
    # Switched off: the interpreter exists on the host, and the error says so and how.
    code, stderr, cli_code, cli_stderr, name = out["closed"]
    assert name == "standard+interpreter_readable"
    assert code == 127
    assert f"cleanroom: command not found: {venv}/bin/python" in stderr
    assert f"{venv}/bin/python exists on the host but is hidden by the policy" in stderr
    assert "interpreter_readable=True" in stderr
    assert cli_code == 127  # no venv on PATH any more
    assert "command not found: hello-cli" in cli_stderr


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_a_venv_directory_that_is_a_link_works_at_every_level(
    linked_venv: Path, tmp_path: Path, backend: str
) -> None:
    # Under an allow-list view (strict, locked) neither the link nor the directory it is in is
    # shown: the sandbox must find the venv by the name the engine knows it by.
    assert_works_at_every_level(engine_in(linked_venv, tmp_path, backend), linked_venv)


def assert_works_at_every_level(out: dict[str, list[object]], venv: Path) -> None:
    for level in ("permissive", "standard", "strict", "locked"):
        code, prefix, stderr, cli_code, cli_out = out[level]
        assert (code, prefix) == (0, str(venv)), f"{level}: {stderr}"
        assert (cli_code, cli_out) == (0, f"hello from {venv}\n"), level
        assert out[level + "-path"] == f"{venv / 'bin'}:{FIXED_PATH}"


def test_a_hidden_program_names_the_option_that_lets_it_through(tmp_path: Path) -> None:
    require_backend("bwrap")
    from pytest_cleanroom import Cleanroom

    tool = tmp_path / "tools" / "mytool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho tool\n")
    tool.chmod(0o755)
    with Cleanroom(tmp_path / "ws", policy="standard", backend="bwrap") as room:
        hidden = room.run([str(tool)])
        missing = room.run([str(tmp_path / "tools" / "absent")])
        let_through = room.run([str(tool)], policy={"readable_paths": [str(tool.parent)]})
    assert hidden.exit_code == 127
    assert f"{tool} exists on the host but is hidden by the policy" in hidden.stderr
    assert f"readable_paths=['{tool.parent}']" in hidden.stderr
    assert f"--cleanroom-readable-path={tool.parent}" in hidden.stderr
    assert missing.stderr == f"cleanroom: command not found: {tmp_path}/tools/absent\n"
    let_through.assert_success().assert_stdout_contains("tool")
