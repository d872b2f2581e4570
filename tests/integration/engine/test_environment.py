"""The deterministic environment as a sandboxed command sees it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom

pytestmark = pytest.mark.integration


def _env(result_stdout: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in result_stdout.splitlines() if "=" in line)
    return {k: v for k, v in pairs}


def test_host_variables_are_dropped_and_fixed_set_provided(
    room: Cleanroom, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLEANROOM_TEST_SECRET", "hunter2")
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    env = _env(room.run(["env"]).stdout)
    assert "CLEANROOM_TEST_SECRET" not in env
    assert not any(k == "LANG" or k.startswith("LC_") for k in env)
    assert env["TZ"] == "UTC"
    assert env["HOME"] == "/workspace/.home"
    fixed = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    venv = [f"{sys.prefix}/bin"] if sys.prefix != sys.base_prefix else []  # the engine's venv
    assert env["PATH"].split(":") == [*venv, *fixed.split(":")]
    assert env["TMPDIR"] == "/tmp"
    assert env["SOURCE_DATE_EPOCH"] == "315532800"
    assert env["PYTHONHASHSEED"] == "1234"
    assert env["CLEANROOM_SEED"] == "1234"


def test_home_exists_and_is_writable(room: Cleanroom) -> None:
    room.run("echo x > $HOME/.rc && cat $HOME/.rc").assert_success().assert_stdout_contains("x")
    assert room.workspace.read(".home/.rc") == "x\n"


def test_allowlist_lets_named_variables_through(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLEANROOM_TEST_KEEP", "kept")
    monkeypatch.setenv("CLEANROOM_TEST_DROP", "dropped")
    policy = {"level": "standard", "env_allowlist": ["CLEANROOM_TEST_KEEP"]}
    with Cleanroom(tmp_path, policy=policy, backend=backend) as room:
        env = _env(room.run(["env"]).stdout)
    assert env["CLEANROOM_TEST_KEEP"] == "kept"
    assert "CLEANROOM_TEST_DROP" not in env


def test_user_env_layers_on_top(tmp_path: Path, backend: str) -> None:
    with Cleanroom(tmp_path, backend=backend, env={"A": "room", "TZ": "Europe/Paris"}) as room:
        env = _env(room.run(["env"], env={"B": "run", "A": "run"}).stdout)
    assert env["A"] == "run"
    assert env["B"] == "run"
    assert env["TZ"] == "Europe/Paris"


def test_same_seed_gives_same_hash_order(tmp_path: Path, backend: str) -> None:
    script = ["python3", "-c", "print(list({'alpha', 'beta', 'gamma', 'delta'}))"]
    with Cleanroom(tmp_path / "1", backend=backend, seed=7) as a:
        first = a.run(script).stdout
    with Cleanroom(tmp_path / "2", backend=backend, seed=7) as b:
        second = b.run(script).stdout
    assert first == second


def test_random_seed_is_reported(tmp_path: Path, backend: str) -> None:
    with Cleanroom(tmp_path, backend=backend) as room:
        result = room.run(["sh", "-c", "echo $CLEANROOM_SEED"])
    assert result.stdout.strip() == str(room.seed) == str(result.seed)
