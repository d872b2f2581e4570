"""Cleanroom phases' services through the service protocol, with real servers: MariaDB, two
tasks at ``-j 2`` each in an isolation of its own, slots reused and reset, a third party's kind
from an entry point, and a sandbox that reaches only the services its policy allows."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.plugin.services.conftest import runtime_dir  # noqa: F401 (a fixture)
from tests.plugin.services.test_service_kinds import write_kind
from tests.unit.lifecycle.helpers import write_project

from .conftest import RunFn, ggen, start, wait_for

#: Every test's servers run in a private runtime directory, where nothing may be left running
#: or on disk when it ends (and no other run's crash sweep reaches them).
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("runtime_dir")]

MARIADB = 'mariadb --socket="$MYSQL_UNIX_PORT" -u "$MYSQL_USER" -N -D "$MYSQL_DATABASE"'
#: The same, into the database named by ``$3``.
MARIADB_OTHER = 'mariadb --socket="$MYSQL_UNIX_PORT" -u "$MYSQL_USER" -N -D "$3"'


def toml_list(commands: list[str]) -> str:
    return "[\n" + "".join(f"  {json.dumps(c)},\n" for c in commands) + "]"


def need(*binaries: str) -> None:
    hints = {
        "bwrap": "apt-get install bubblewrap",
        "psql": "apt-get install postgresql-client",
        "redis-cli": "apt-get install redis-tools",
        "redis-server": "apt-get install redis-server",
        "mariadb": "apt-get install mariadb-client",
        "mariadbd": "apt-get install mariadb-server",
    }
    for binary in binaries:
        require_binary(binary, hints[binary])


def test_a_phase_gets_a_mariadb_database_of_its_own(run_project: RunFn) -> None:
    need("bwrap", "mariadb", "mariadbd")
    commands = [
        f"{MARIADB} -e 'create table t (x int); insert into t values (41)'",
        f"{MARIADB} -e 'select x + 1 from t'",
        'test "$DATABASE_URL" = "$MYSQL_URL" && echo url=${DATABASE_URL%%:*}',
        # The task's own user has no server-wide right.
        f"{MARIADB} -e 'set global max_connections = 5' 2>&1 || echo global-refused",
    ]
    ran = run_project(
        f"""
        [lifecycle.test]
        commands = {toml_list(commands)}
        [lifecycle.test.cleanroom]
        enabled = true
        policy = "strict"
        services = ["mysql"]
        """,
        ["test"],
    )
    assert ran.summary.status == "success", ran.output
    assert "test | 42" in ran.output
    assert "test | url=mysql" in ran.output
    assert "both give a DATABASE_URL" not in ran.output
    assert "test | global-refused" in ran.output


def barrier(me: str, other: str, step: str) -> str:
    """Say ``me`` reached ``step`` in the shared workspace, then wait (30 s at most) for
    ``other`` to reach it too: both tasks are then running at once."""
    return (
        f"touch {me}.{step}; i=0; until [ -f {other}.{step} ]; do i=$((i+1));"
        f" [ $i -lt 1500 ] || exit 9; sleep 0.02; done"
    )


def concurrent_phase(me: str, other: str) -> str:
    """A phase that stores data in each service, then, while ``other`` runs too, lists what it
    sees and tries to reach ``other``'s database, Redis server and MariaDB database."""
    commands = [
        f"psql -v ON_ERROR_STOP=1 -qc 'create table only_{me} (x int)'",
        f"redis-cli -s $REDIS_SOCKET -n $REDIS_DB set key_{me} 1 > /dev/null",
        f"{MARIADB} -e 'create table only_{me} (x int)'",
        f'echo "$PGDATABASE $REDIS_SOCKET $MYSQL_DATABASE" > {me}.handles',
        barrier(me, other, "ready"),
        f"echo {me}-pg=$(psql -Atc \"select string_agg(tablename, ',') from pg_tables"
        " where schemaname = 'public'\")",
        f"echo {me}-redis=$(redis-cli -s $REDIS_SOCKET -n $REDIS_DB keys '*')",
        f"echo {me}-mysql=$({MARIADB} -e 'show tables')",
        f"echo {me}-database-url=${{DATABASE_URL:-none}}",
        f"set -- $(cat {other}.handles); psql -d $1 -Atc 'select 1' 2>/dev/null"
        f" || echo {me}-other-pg-refused",
        f"set -- $(cat {other}.handles); redis-cli -s $2 ping 2>/dev/null | grep -q PONG"
        f" || echo {me}-other-redis-unreachable",
        f"set -- $(cat {other}.handles); {MARIADB_OTHER} -e 'select 1' 2>/dev/null"
        f" || echo {me}-other-mysql-refused",
        barrier(me, other, "checked"),
    ]
    return f"""
        [lifecycle.{me}]
        commands = {toml_list(commands)}
        [lifecycle.{me}.cleanroom]
        enabled = true
        services = ["postgres", "redis", "mysql"]
        """


def test_two_concurrent_tasks_cannot_see_each_others_data(run_project: RunFn) -> None:
    need("bwrap", "psql", "redis-cli", "redis-server", "mariadb", "mariadbd")
    both = '[lifecycle.both]\ncommand = "true"\ndepends_on = ["a", "b"]\n'
    ran = run_project(
        concurrent_phase("a", "b") + concurrent_phase("b", "a") + both, ["both"], jobs=2
    )
    assert ran.summary.status == "success", ran.output
    for me in ("a", "b"):
        assert f"{me} | {me}-pg=only_{me}\n" in ran.output
        assert f"{me} | {me}-redis=key_{me}\n" in ran.output
        assert f"{me} | {me}-mysql=only_{me}\n" in ran.output
        # postgres and mysql both reach the commands: neither is DATABASE_URL, and it is said
        assert f"{me} | {me}-database-url=none\n" in ran.output
        assert (
            f"{me} | cleanroom services: mysql and postgres both give a DATABASE_URL: a command"
            " that may reach both gets none; use MYSQL_URL, POSTGRES_URL" in ran.output
        )
        for service in ("pg-refused", "redis-unreachable", "mysql-refused"):
            assert f"{me} | {me}-other-{service}\n" in ran.output


def test_a_slot_is_reused_reset_and_everything_stopped_at_the_end(
    run_project: RunFn, tmp_path: Path
) -> None:
    need("bwrap", "psql", "redis-cli", "redis-server")
    see = [
        "echo handles $PGPORT $PGDATABASE $REDIS_SOCKET",
        "echo keys=$(redis-cli -s $REDIS_SOCKET -n $REDIS_DB keys '*')",
        "redis-cli -s $REDIS_SOCKET -n $REDIS_DB set left behind > /dev/null",
        "redis-cli -s $REDIS_SOCKET -n $REDIS_DB config set maxmemory 1mb 2>&1 | head -1",
        "psql -v ON_ERROR_STOP=1 -qc 'create table t (x int)'",
    ]
    ran = run_project(
        f"""
        [lifecycle.first]
        commands = {toml_list(see)}
        cleanroom = {{ enabled = true, services = ["postgres", "redis"] }}
        [lifecycle.second]
        commands = {toml_list(see)}
        depends_on = ["first"]
        cleanroom = {{ enabled = true, services = ["postgres", "redis"] }}
        """,
        ["second"],
    )
    assert ran.summary.status == "success", ran.output
    handles = re.findall(r"(first|second) \| handles (\d+) (\S+) (\S+)", ran.output)
    assert len(handles) == 2, ran.output
    (_, port, first_db, first_redis), (_, _, second_db, second_redis) = handles
    assert first_redis == second_redis  # the same slot, so the same Redis server
    assert first_db != second_db  # a database of its own, under the slot's prefix
    assert first_db.rsplit("_", 1)[0] == second_db.rsplit("_", 1)[0]
    assert "second | keys=\n" in ran.output  # the first task's key was flushed
    assert "NOPERM" in ran.output  # the sandbox's Redis user has no CONFIG
    with socket.socket() as probe:
        probe.settimeout(2)
        with pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", int(port)))
    assert not os.path.exists(first_redis)


def test_ctrl_c_stops_the_phase_and_its_servers(tmp_path: Path) -> None:
    need("bwrap", "redis-server")
    root = write_project(
        tmp_path,
        """
        [lifecycle.slow]
        command = "echo $PGPORT $REDIS_SOCKET > handles; sleep 60"
        [lifecycle.slow.cleanroom]
        enabled = true
        services = ["postgres", "redis"]
        """,
    )
    proc = start(root, "run", "slow")
    wait_for(root / "handles", proc, whole_line=True)
    port, redis_socket = (root / "handles").read_text().split()
    assert os.path.exists(redis_socket)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in out
    assert not os.path.exists(redis_socket)
    with socket.socket() as probe:
        probe.settimeout(2)
        with pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", int(port)))


def test_the_servers_of_a_killed_run_are_removed_by_the_next(tmp_path: Path) -> None:
    need("bwrap", "redis-server")
    root = write_project(
        tmp_path,
        """
        [lifecycle.slow]
        command = "echo $PGPORT $REDIS_SOCKET > handles; sleep 60"
        cleanroom = { enabled = true, services = ["postgres", "redis"] }
        [lifecycle.quick]
        command = "true"
        cleanroom = { enabled = true, services = ["redis"] }
        """,
    )
    proc = start(root, "run", "slow")
    wait_for(root / "handles", proc, whole_line=True)
    port, redis_socket = (root / "handles").read_text().split()
    proc.kill()  # no clean-up of its own
    proc.communicate(timeout=60)
    assert os.path.exists(redis_socket)  # its servers outlived it
    done = ggen(root, "run", "quick")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "removed redis of crashed run" in done.stdout, done.stdout
    assert not os.path.exists(redis_socket)
    with socket.socket() as probe:
        probe.settimeout(2)
        with pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", int(port)))


def test_a_failed_task_shows_its_own_lines_of_the_servers_log(run_project: RunFn) -> None:
    need("bwrap", "psql")
    ran = run_project(
        """
        [lifecycle.fails]
        command = "psql -qc 'select * from missing_in_fails' || exit 3"
        cleanroom = { enabled = true, services = ["postgres"] }
        [lifecycle.passes]
        command = "psql -qc 'select * from missing_in_passes' || true"
        cleanroom = { enabled = true, services = ["postgres"] }
        [lifecycle.both]
        command = "true"
        depends_on = ["passes", "fails"]
        """,
        ["both"],
        jobs=2,
        keep_going=True,
    )
    assert ran.statuses["fails"] == "failed", ran.output
    report = ran.output.split("fails | cleanroom postgres server log (since the task began)", 1)
    assert len(report) == 2, ran.output
    ours = [line for line in report[1].splitlines() if line.startswith("fails | ")]
    assert any('relation "missing_in_fails" does not exist' in line for line in ours), ran.output
    assert not any("missing_in_passes" in line for line in ours)  # the other task's lines
    assert "passes | cleanroom postgres server log" not in ran.output  # it did not fail


def test_a_phase_without_services_cannot_reach_a_concurrent_phases(run_project: RunFn) -> None:
    need("bwrap", "psql", "redis-cli", "redis-server")
    user = [
        'echo "$PGHOST $PGPORT $REDIS_SOCKET" > handles',
        "i=0; until [ -f done ]; do i=$((i+1)); [ $i -lt 1500 ] || exit 9; sleep 0.02; done",
    ]
    prober = [
        "i=0; until [ -f handles ]; do i=$((i+1)); [ $i -lt 1500 ] || exit 9; sleep 0.02; done",
        "set -- $(cat handles); ls $1 2>/dev/null | grep -q . || echo pg-socket-absent",
        "set -- $(cat handles); [ -e $3 ] || echo redis-socket-absent",
        "echo vars=${PGHOST:-}${REDIS_URL:-}${DATABASE_URL:-}",
        "touch done",
    ]
    ran = run_project(
        f"""
        [lifecycle.user]
        commands = {toml_list(user)}
        cleanroom = {{ enabled = true, services = ["postgres", "redis"] }}
        [lifecycle.prober]
        commands = {toml_list(prober)}
        cleanroom = {{ enabled = true }}
        [lifecycle.both]
        command = "true"
        depends_on = ["user", "prober"]
        """,
        ["both"],
        jobs=2,
    )
    assert ran.summary.status == "success", ran.output
    assert "prober | pg-socket-absent" in ran.output
    assert "prober | redis-socket-absent" in ran.output
    assert "prober | vars=\n" in ran.output


#: Run in the sandbox: set a key in the task's namespace of the kv kind's server.
KV_PROBE = """
import os
import socket

conn = socket.socket(socket.AF_UNIX)
conn.connect(os.environ["KV_SOCKET"])
conn.sendall(f"SET {os.environ['KV_NAMESPACE']} key value\\n".encode())
print(os.environ["KV_NAMESPACE"], conn.makefile().readline().strip())
"""


def test_a_third_party_kind_from_an_entry_point(tmp_path: Path) -> None:
    need("bwrap")
    env = dict(os.environ, PYTHONPATH=write_kind(tmp_path))
    phases = "".join(
        f"""
        [lifecycle.{name}]
        commands = ["python3 probe.py", "echo socket=$KV_SOCKET"]
        [lifecycle.{name}.cleanroom]
        enabled = true
        policy = "strict"
        services = ["kv"]
        """
        for name in ("one", "two")
    )
    phases += '[lifecycle.both]\ncommand = "true"\ndepends_on = ["one", "two"]\n'
    root = write_project(tmp_path / "proj", phases, {"probe.py": KV_PROBE})
    done = ggen(root, "run", "both", "-j", "2", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    namespaces = dict(re.findall(r"(one|two) \| (cr_\w+) OK", done.stdout))
    assert set(namespaces) == {"one", "two"}, done.stdout
    assert namespaces["one"] != namespaces["two"]
    kv_socket = re.search(r"socket=(\S+)", done.stdout)
    assert kv_socket is not None
    assert not os.path.exists(kv_socket.group(1))  # stopped with the run
    # The schema checks names against the registry, entry points included.
    write_project(root, phases.replace('["kv"]', '["kvv"]'))
    refused = ggen(root, "run", "one", env=env)
    assert refused.returncode == 2
    assert (
        "unknown service kind 'kvv' (did you mean 'kv'?): registered kinds are kv, mysql, "
        "postgres, redis" in refused.stderr
    )
    # make.toml validated (and the result kept in .ggen) while kv was installed: with the kind
    # gone, the task that names it fails with the same list.
    write_project(root, phases)
    assert ggen(root, "list", env=env).returncode == 0
    assert list((root / ".ggen" / "validated").iterdir())
    gone = ggen(root, "run", "one")
    assert gone.returncode == 1, gone.stdout + gone.stderr
    assert (
        "cannot provide service for the cleanroom phase: unknown service kind 'kv': registered "
        "kinds are mysql, postgres, redis" in gone.stdout + gone.stderr
    )
