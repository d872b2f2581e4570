"""A killed run's servers are found and removed by the next run; nothing else is ever touched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_cleanroom.services import cleanup
from pytest_cleanroom.services.binaries import find_postgres
from pytest_cleanroom.services.engines import ContainerEngine
from pytest_cleanroom.services.hub import RunContext, ServiceHub, teardown_run
from pytest_cleanroom.services.registry import Owner, Registry
from pytest_cleanroom.services.settings import ServiceSettings

from .conftest import (
    child_env,
    docker_client,
    engine_env,
    leftovers,
    processes_under,
    run_pytest,
    wait_for_file,
)

pytestmark = pytest.mark.integration

HOLD = """
import os, time
from pathlib import Path

def test_hold(postgres, redis):
    conn = postgres.connect()
    conn.execute("CREATE TABLE t (x int)")
    conn.execute("INSERT INTO t VALUES (1)")  # a transaction left open when the run dies
    redis.client().set("k", "v")
    Path(os.environ["READY_FILE"]).write_text(postgres.dbname)
    time.sleep(300)
"""


def server_dirs(runtime_dir: Path) -> list[str]:
    return leftovers(runtime_dir)


def start_holding_run(
    directory: Path, env: dict[str, str], *args: str, script: str = HOLD
) -> subprocess.Popen[str]:
    """A child pytest (its own process group) whose test holds postgres and redis (or what
    ``script`` holds) until killed; returns once the test has its databases."""
    (directory / "test_hold.py").write_text(script)
    ready = directory / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_hold.py", *args],
        cwd=directory,
        env={**env, "READY_FILE": str(ready)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    wait_for_file(ready, proc)
    return proc


def run_later(directory: Path, runtime_dir: Path) -> str:
    """The next run on the same runtime directory (one passing test); its output."""
    later = directory / "later"
    later.mkdir()
    (later / "test_ok.py").write_text("def test_ok():\n    pass\n")
    result = run_pytest(later, child_env(runtime_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def kill_run_and_check_orphans(proc: subprocess.Popen[str], runtime_dir: Path) -> list[int]:
    """SIGKILL the whole pytest process group; the servers (own sessions) survive as orphans."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.2)
    orphans = processes_under(runtime_dir)
    assert orphans, "the servers should have outlived the killed run"
    return orphans


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
@pytest.mark.usefixtures("need_postgres", "need_redis")
def test_sigkill_of_pytest_leaves_orphans_that_the_next_run_removes(
    tmp_path: Path, runtime_dir: Path, workers: list[str]
) -> None:
    proc = start_holding_run(tmp_path, child_env(runtime_dir), *workers)
    orphans = kill_run_and_check_orphans(proc, runtime_dir)
    assert len(server_dirs(runtime_dir)) == 3  # postgres (+ its data in RAM) and redis
    assert len(list(Registry(runtime_dir).records())) == 2

    output = run_later(tmp_path, runtime_dir)
    assert "cleanroom services: removed postgres of crashed run" in output
    assert "cleanroom services: removed redis of crashed run" in output
    assert processes_under(runtime_dir) == []
    assert all(not Path(f"/proc/{pid}").exists() or _zombie(pid) for pid in orphans)
    assert server_dirs(runtime_dir) == []
    assert list(Registry(runtime_dir).records()) == []


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


REDIS_ONLY = """
def test_redis(redis):
    pass
"""


@pytest.mark.parametrize("record", ["kept", "lost"])
def test_sigkill_of_pytest_leaves_containers_that_the_next_run_removes(
    engine: ContainerEngine, tmp_path: Path, runtime_dir: Path, record: str
) -> None:
    """``kept``: the next run's sweep of the leftovers registry removes them. ``lost``: the
    runtime directory was wiped too (a reboot's /tmp), and the next run that starts a container
    on the same engine removes the dead owner's containers by their labels."""
    proc = start_holding_run(tmp_path, child_env(runtime_dir, **engine_env(engine)))
    owner = f"io.cleanroom.owner-pid={proc.pid}"
    client = docker_client(engine)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        running = client.containers.list(filters={"label": owner})
        assert len(running) == 2, "postgres and redis containers outlive the killed run"
        if record == "kept":
            assert "removed postgres of crashed run" in run_later(tmp_path, runtime_dir)
            assert server_dirs(runtime_dir) == []
        else:
            for path in (runtime_dir / "registry").iterdir():
                path.unlink()  # the registry forgot them: only the labels remain
            (tmp_path / "later").mkdir()
            (tmp_path / "later" / "test_redis.py").write_text(REDIS_ONLY)
            env = child_env(runtime_dir, **engine_env(engine))
            result = run_pytest(tmp_path / "later", env)
            assert result.returncode == 0, result.stdout + result.stderr
        assert client.containers.list(all=True, filters={"label": owner}) == []
    finally:
        for container in client.containers.list(all=True, filters={"label": owner}):
            container.remove(force=True)
        client.close()


def test_sweep_spares_live_owners_and_never_kills_a_reused_pid(runtime_dir: Path) -> None:
    registry = Registry(runtime_dir)
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        server_dir = runtime_dir / "po-dead-000000"
        server_dir.mkdir()
        dead = subprocess.Popen(["true"])
        dead.wait()
        # A crashed run whose recorded server pid now belongs to an unrelated process.
        registry.add(
            service="postgres",
            run_id="dead",
            owner=Owner(dead.pid, "1", Owner.current().host, Owner.current().pidns),
            handle={
                "kind": "process",
                "server_dir": str(server_dir),
                "pid": bystander.pid,
                "token": "not-its-start-time",
                "pidfile": "",
            },
        )
        # A run that is still alive (this process).
        live_dir = runtime_dir / "po-live-000000"
        live_dir.mkdir()
        registry.add(
            service="redis",
            run_id="live",
            owner=Owner.current(),
            handle={"kind": "process", "server_dir": str(live_dir), "pid": None, "pidfile": ""},
        )
        removed = registry.sweep(cleanup.stop)
        assert len(removed) == 1
        assert "crashed run dead" in removed[0]
        assert bystander.poll() is None, "an unrelated process with a reused pid was killed"
        assert not server_dir.exists()
        assert live_dir.exists()
        assert [r["run_id"] for r in registry.records()] == ["live"]
    finally:
        bystander.kill()
        bystander.wait()


RACE = """
import json, os, sys, time
from pathlib import Path
from pytest_cleanroom.services.hub import RunContext, ServiceHub
from pytest_cleanroom.services.postgres.template import run_template
from pytest_cleanroom.services.registry import Owner
from pytest_cleanroom.services.settings import ServiceSettings

shared, runtime, go, owner, worker = sys.argv[1:6]
settings = ServiceSettings(
    runtime_dir=Path(runtime), data_dir=Path(os.environ["CLEANROOM_SERVICES_DATA_DIR"])
)
run = RunContext("race", Owner.current(int(owner)), Path(shared), worker_id=worker, worker_count=2)
hub = ServiceHub(settings, run)
while not Path(go).exists():
    time.sleep(0.0005)
pg = hub.server("postgres")
rd = hub.server("redis")
print(json.dumps({"pg": pg.port, "redis": rd.port, "template": run_template(hub)}))
"""


@pytest.mark.usefixtures("need_postgres", "need_redis")
def test_two_workers_asking_at_the_same_instant_share_one_postgres(
    tmp_path: Path, runtime_dir: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    go = tmp_path / "go"
    script = tmp_path / "race.py"
    script.write_text(RACE)
    env = child_env(runtime_dir)
    owner = str(os.getpid())
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(shared), str(runtime_dir), str(go), owner, w],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in ("gw0", "gw1")
    ]
    time.sleep(0.5)  # both are waiting for the signal
    go.touch()
    try:
        outputs = [p.communicate(timeout=120) for p in procs]
        results = [json.loads(out) for out, _ in outputs]
        # One PostgreSQL for the run; a Redis server of its own for each worker.
        assert results[0]["pg"] == results[1]["pg"], outputs
        assert results[0]["template"] == results[1]["template"], outputs
        assert results[0]["redis"] != results[1]["redis"], outputs
        assert [d.split("-")[0] for d in server_dirs(runtime_dir)] == ["data:po", "po", "re", "re"]
    finally:
        problems = teardown_run(shared / "cleanroom-services")
    assert problems == []
    assert processes_under(runtime_dir) == []
    assert server_dirs(runtime_dir) == []


@pytest.mark.usefixtures("need_postgres")
def test_a_failed_start_is_reported_to_every_worker_without_retrying(
    tmp_path: Path, runtime_dir: Path
) -> None:
    settings = ServiceSettings(runtime_dir=runtime_dir, postgres_bin_dir=tmp_path / "nothing")
    assert settings.data_dir is None
    settings = settings.with_changes(provider="process")
    run = RunContext("fail", Owner.current(), tmp_path)
    first = ServiceHub(settings, run)
    with pytest.raises(Exception, match="no postgres server binaries") as one:
        first.server("postgres")
    # Another worker (a new hub on the same shared directory) gets the same error from the
    # recorded state, even though the binaries' directory now holds a server it could start.
    real = find_postgres()
    assert real is not None
    (tmp_path / "nothing").symlink_to(real.bin_dir)
    second = ServiceHub(settings, run)
    with pytest.raises(type(one.value), match="no postgres server binaries"):
        second.server("postgres")
    assert server_dirs(runtime_dir) == []


def test_unreadable_records_and_vanished_directories_do_not_break_the_sweep(
    runtime_dir: Path,
) -> None:
    registry = Registry(runtime_dir)
    dead = subprocess.Popen(["true"])
    dead.wait()
    owner = Owner(dead.pid, "1", Owner.current().host, Owner.current().pidns)
    # A record whose server directory is already gone, and a half-written record of a run killed
    # while writing it: the first is removed, the second is left alone (never guessed at).
    registry.add(
        service="redis",
        run_id="gone",
        owner=owner,
        handle={"kind": "process", "server_dir": str(runtime_dir / "re-gone"), "pidfile": ""},
    )
    (registry.dir / "half.json").write_text('{"id": "half", "owner": {"pid": 1')
    # A container whose engine is down now: kept, and tried again by a later run.
    kept = registry.add(
        service="postgres",
        run_id="engine-down",
        owner=owner,
        handle={
            "kind": "container",
            "name": "cleanroom-engine-down-postgres-000000",
            "docker_host": f"unix://{runtime_dir}/no-engine.sock",
        },
    )
    removed = sorted(registry.sweep(cleanup.stop))
    assert len(removed) == 2
    assert removed[0].startswith(f"could not remove {kept} (tried again next run): ")
    assert removed[1].startswith("removed redis of crashed run gone: nothing left of")
    assert sorted(p.name for p in registry.dir.iterdir()) == [f"{kept}.json", "half.json"]
