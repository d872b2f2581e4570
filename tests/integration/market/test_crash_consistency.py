"""``ggen market add`` killed with SIGKILL at every step of its transaction: the next ggen finds
the project exactly as before or fully updated, and no ``.ggen/.staging-*`` is left behind.

The kill is real (the process sends itself SIGKILL at the N-th crash point named by
``GGEN_MARKET_CRASH_AT``, see ``ggen_market/_faults.py``); so is the registry, the extraction and
every rename."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

from tests.conftest import ggen_env, run_ggen

from .conftest import ggen, tree_state, write_gpack


def _publish(src: Path, registry: Path) -> None:
    result = ggen("market", "index", str(src), "--output", str(registry))
    assert result.exit_code == 0, result.output


def _state(project: Path) -> tuple[bytes, str]:
    """The lock's bytes and every installed file (names relative to the packages directory)."""
    return (project / "ggen.lock").read_bytes(), tree_state(project / ".ggen" / "packages")


def test_add_killed_at_every_step_is_undone_or_completed(
    tmp_path: Path, env: dict[str, str]
) -> None:
    src, registry = tmp_path / "src", tmp_path / "registry"
    write_gpack(src, "io.crash.alpha", "1.0.0", files={"data/a.txt": "one\n"})
    write_gpack(src, "io.crash.beta", "1.0.0", deps={"io.crash.alpha": "^1"})
    _publish(src, registry)
    env = {**env, "GGEN_REGISTRY_URL": str(registry)}
    before = tmp_path / "before"
    before.mkdir()
    done = run_ggen("market", "add", "io.crash.beta", cwd=before, env=ggen_env(**env))
    assert done.returncode == 0, done.stderr
    write_gpack(src, "io.crash.alpha", "2.0.0", files={"data/a.txt": "two\n"})
    write_gpack(src, "io.crash.beta", "2.0.0", deps={"io.crash.alpha": "^2"})
    write_gpack(src, "io.crash.gamma", "1.0.0", files={"g.txt": "g\n"})
    _publish(src, registry)
    command = ("market", "add", "io.crash.beta@^2", "io.crash.gamma")

    after = tmp_path / "after"
    shutil.copytree(before, after)
    traced_env = ggen_env(**env, GGEN_MARKET_CRASH_AT="999", GGEN_MARKET_CRASH_TRACE="1")
    traced = run_ggen(*command, cwd=after, env=traced_env)
    assert traced.returncode == 0, traced.stderr
    points = [line for line in traced.stderr.splitlines() if line.startswith("crash point")]
    assert any("journal written" in p for p in points)
    assert any("lock written" in p for p in points)
    assert len(points) >= 10  # two fetches and extractions, the journal, the moves, the lock
    as_before, fully_updated = _state(before), _state(after)
    assert as_before != fully_updated

    outcomes = []
    for number in range(1, len(points) + 1):
        project = tmp_path / f"kill-{number}"
        shutil.copytree(before, project)
        crash_env = ggen_env(**env, GGEN_MARKET_CRASH_AT=str(number))
        killed = run_ggen(*command, cwd=project, env=crash_env)
        assert killed.returncode == -signal.SIGKILL, (points[number - 1], killed.stderr)
        # The next ggen (here: verify) rolls the dead transaction back or finishes it.
        check = ggen("market", "verify", "--json", "--project", str(project))  # in process
        assert check.exit_code == 0, (points[number - 1], check.stdout, check.stderr)
        assert all(r["status"] == "ok" for r in json.loads(check.stdout)["packages"])
        state = _state(project)
        assert state in (as_before, fully_updated), points[number - 1]
        assert not list((project / ".ggen").glob(".staging-*")), points[number - 1]
        outcomes.append("before" if state == as_before else "updated")
        if "move" in points[number - 1] and "again" not in outcomes:
            # The interrupted command simply works when run again (once: each run costs).
            again = run_ggen(*command, cwd=project, env=ggen_env(**env))
            assert again.returncode == 0, again.stderr
            assert _state(project) == fully_updated
            outcomes.append("again")
    assert outcomes[-1] == "updated"  # killed after the lock was written: kept
    assert outcomes[0] == "before"
    assert "again" in outcomes
