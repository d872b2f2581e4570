"""Benchmark the postgres/redis/mysql fixtures against pytest-postgresql, testcontainers and
pytest-mysql.

Every tool runs the same generated suite of N tests (default 100) in which every test writes a
table (Redis: a few keys), at -n 0 and -n 2, in fresh pytest processes:

    .venv/bin/python benchmarks/bench_services.py [--tests 100] [--json] [--skip-docker]
        [--skip-podman]

Columns: time from launching pytest to the first test body; the first test's fixture set-up
(server start included); the median per-test isolation cost (fixture set-up + teardown); the
median whole test (set-up + body + teardown); the whole suite's wall time at -n 0 and -n 2, and
where it went (launch to the first set-up, the tests, the last teardown to the exit of pytest) and
the CPU seconds of pytest, its workers and the servers it started (a loaded machine stretches the
wall times more than the CPU times).
"cold" is a first run with an empty cache (initdb), every other cleanroom row uses the cache.
Peers: pytest-postgresql's ``postgresql_proc`` + ``postgresql`` fixtures, and testcontainers'
PostgresContainer (one container per worker, a database created and dropped per test, the usual
hand-written fixture), and pytest-mysql's ``mysql_proc`` + ``mysql`` against the ``mysql``
fixture on the same MariaDB binaries (pytest-mysql is installed for this script alone, into
.venv/opt/pytest-mysql, on first use). pytest-databases (installed likewise into
.venv/opt/pytest-databases) is the docker peer: its ``postgres_image`` and ``redis_image``
fixtures are pointed at the project's locally built images (no registry answers here); it has no
such fixture for MariaDB (``mariadb_service`` always names ``mariadb:11.4``), so its MariaDB row
overrides ``mariadb_service`` with the plugin's own provider function ``_provide_mariadb_service``
on cleanroom/mariadb:10.11. The cleanroom container rows run on Docker and on Podman
(``scripts/podman-engine.sh start`` and ``images``), each row saying its engine; a missing
engine is said and its rows left out. Like the testcontainers row, its suites create and drop a
database per test themselves (pytest-databases gives one per worker). Each suite loads only its
own plugin (plugin autoloading is off, so hypothesis, syrupy and the others installed here stay
out), plus pytest-xdist, and Python's bytecode cache is on (in the work directory) even where
PYTHONDONTWRITEBYTECODE is set, as on a developer's machine. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: pytest-mysql and its own dependencies, apart from the project's environment.
PYTEST_MYSQL = REPO / ".venv" / "opt" / "pytest-mysql"
PYTEST_DATABASES = REPO / ".venv" / "opt" / "pytest-databases"
PG_CTL_GLOB = "/usr/lib/postgresql/*/bin/pg_ctl"
IMAGES = ("cleanroom/postgres:15", "cleanroom/redis:7", "cleanroom/mariadb:10.11")

RECORDER = """
import json, os

def pytest_runtest_logreport(report):
    with open(os.environ["BENCH_RECORD"], "a") as fh:
        fh.write(json.dumps({"id": report.nodeid, "when": report.when, "start": report.start,
                             "duration": report.duration, "outcome": report.outcome}) + "\\n")
"""

WRITE_SQL = (
    "CREATE TABLE t (id int PRIMARY KEY, v text); "
    "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 100) g"
)

SUITES = {
    "cleanroom": f'''
import pytest

@pytest.mark.parametrize("n", range({{n}}))
def test_write(postgres, n):
    with postgres.connect() as conn:
        conn.execute("{WRITE_SQL}")
''',
    "cleanroom-redis": """
import pytest

@pytest.mark.parametrize("n", range({n}))
def test_write(redis, n):
    client = redis.client()
    client.mset({{f"k{{i}}": i for i in range(20)}})
    assert client.dbsize() == 20
""",
    "cleanroom-mysql": """
import pytest

@pytest.mark.parametrize("n", range({n}))
def test_write(mysql, n):
    with mysql.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        cur.executemany("INSERT INTO t VALUES (%s, MD5(%s))", [(g, g) for g in range(1, 101)])
        conn.commit()
""",
    "pytest-mysql": """
import pytest

@pytest.mark.parametrize("n", range({n}))
def test_write(mysql, n):
    cur = mysql.cursor()
    cur.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    cur.executemany("INSERT INTO t VALUES (%s, MD5(%s))", [(g, g) for g in range(1, 101)])
    mysql.commit()
""",
    "pytest-databases": f'''
import pytest

@pytest.mark.parametrize("n", range({{n}}))
def test_write(db, n):
    db.execute("{WRITE_SQL}")
''',
    "pytest-databases-redis": """
import pytest

@pytest.mark.parametrize("n", range({n}))
def test_write(client, n):
    client.mset({{f"k{{i}}": i for i in range(20)}})
    assert client.dbsize() == 20
""",
    "pytest-databases-mariadb": """
import pytest

@pytest.mark.parametrize("n", range({n}))
def test_write(mdb, n):
    with mdb.cursor() as cur:
        cur.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        cur.executemany("INSERT INTO t VALUES (%s, MD5(%s))", [(g, g) for g in range(1, 101)])
    mdb.commit()
""",
    "pytest-postgresql": f'''
import pytest

@pytest.mark.parametrize("n", range({{n}}))
def test_write(postgresql, n):
    postgresql.execute("{WRITE_SQL}")
    postgresql.commit()
''',
    "testcontainers": f'''
import psycopg, pytest

@pytest.mark.parametrize("n", range({{n}}))
def test_write(db, n):
    db.execute("{WRITE_SQL}")
''',
}

TESTCONTAINERS_CONFTEST = """
import itertools, os, psycopg, pytest
from testcontainers.postgres import PostgresContainer

_names = itertools.count()

@pytest.fixture(scope="session")
def pg():
    image = os.environ.get("BENCH_PG_IMAGE", "cleanroom/postgres:15")
    with PostgresContainer(image, driver=None) as container:
        yield container

@pytest.fixture
def db(pg):
    url = pg.get_connection_url(host="127.0.0.1")
    name = f"t{next(_names)}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    conn = psycopg.connect(url.rsplit("/", 1)[0] + "/" + name, autocommit=True)
    yield conn
    conn.close()
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
"""

# pytest-databases on the project's images: its documented image fixtures for PostgreSQL and
# Redis; for MariaDB (no image fixture) its own provider function on our image.
PYTEST_DATABASES_CONFTEST = """
import itertools, psycopg, pymysql, pytest, redis

pytest_plugins = ["pytest_databases.docker.postgres", "pytest_databases.docker.redis",
                  "pytest_databases.docker.mariadb"]

_names = itertools.count()

@pytest.fixture(scope="session")
def postgres_image():
    return "cleanroom/postgres:15"

@pytest.fixture(scope="session")
def redis_image():
    return "cleanroom/redis:7"

@pytest.fixture(scope="session")
def mariadb_service(docker_service, xdist_mariadb_isolation_level, mariadb_user,
                    mariadb_password, mariadb_root_password, mariadb_database):
    from pytest_databases.docker.mariadb import _provide_mariadb_service

    with _provide_mariadb_service(
        docker_service, image="cleanroom/mariadb:10.11", name="mariadb-cleanroom",
        isolation_level=xdist_mariadb_isolation_level, user=mariadb_user,
        password=mariadb_password, root_password=mariadb_root_password,
        database=mariadb_database,
    ) as service:
        yield service

def _pg_url(service, database):
    return (f"postgresql://{service.user}:{service.password}@{service.host}:{service.port}/"
            f"{database}")

@pytest.fixture
def db(postgres_service):
    service = postgres_service
    name = f"t{next(_names)}_{service.database}"  # the workers share one server
    with psycopg.connect(_pg_url(service, service.database), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    conn = psycopg.connect(_pg_url(service, name), autocommit=True)
    yield conn
    conn.close()
    with psycopg.connect(_pg_url(service, service.database), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")

@pytest.fixture
def mdb(mariadb_service, mariadb_root_password):
    name = f"t{next(_names)}_{mariadb_service.db}"
    admin = dict(host=mariadb_service.host, port=mariadb_service.port, user="root",
                 password=mariadb_root_password, autocommit=True)
    with pymysql.connect(**admin) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    conn = pymysql.connect(**{**admin, "database": name, "autocommit": False})
    yield conn
    conn.close()
    with pymysql.connect(**admin) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE {name}")

@pytest.fixture
def client(redis_service):
    client = redis.Redis(host=redis_service.host, port=redis_service.port, db=redis_service.db)
    yield client
    client.flushdb()
    client.close()
"""

# pytest-postgresql runs pg_ctl as the current user, and PostgreSQL refuses root: as root, its
# pg_ctl is wrapped to run as the 'postgres' account, which is handed the run's temp directory.
PG_CTL_WRAPPER = """#!/bin/sh
chown -R postgres: "$BENCH_BASETEMP"
exec setpriv --reuid=postgres --regid=postgres --init-groups {pg_ctl} "$@"
"""


@dataclass
class Run:
    tool: str
    workers: int
    wall: float
    first_test: float
    first_setup: float
    isolation_ms: float
    per_test_ms: float
    passed: int
    failed: int
    #: Where the wall time went: launch to the first set-up, first set-up to the last teardown,
    #: last teardown to the process's exit (reports, server stop, interpreter exit).
    before_tests: float = float("nan")
    tests: float = float("nan")
    after_tests: float = float("nan")
    cpu: float = float("nan")
    note: str = ""
    samples: dict[str, float] = field(default_factory=dict)


class SuiteFailedError(Exception):
    """A suite that did not pass; ``reason`` is its last error line, for the table."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def failed_run(tool: str, workers: int, reason: str) -> Run:
    """A row that could not be measured: the table prints why instead of figures."""
    nan = float("nan")
    return Run(tool, workers, nan, nan, nan, nan, nan, 0, 0, note=f"FAILED: {reason}")


def progress(message: str) -> None:
    print(f"[bench_services] {message}", file=sys.stderr, flush=True)


def run_suite(
    tool: str, directory: Path, workers: int, env: dict[str, str], args: list[str]
) -> Run:
    record = directory / f"record-{workers}.jsonl"
    record.unlink(missing_ok=True)
    basetemp = directory / f"basetemp-{workers}"
    env = {**env, "BENCH_RECORD": str(record), "BENCH_BASETEMP": str(basetemp)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "bench_recorder"]
    cmd += ["-p", "xdist.plugin", f"--basetemp={basetemp}", *args]
    if workers:
        cmd += ["-n", str(workers)]
    launched = time.time()
    t0 = time.perf_counter()
    cpu0 = _children_cpu()
    done = subprocess.run(cmd, cwd=directory, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    exited = launched + wall
    _reap_orphans()
    cpu = _children_cpu() - cpu0
    rows = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    if done.returncode != 0 or not rows:
        lines = (done.stdout + done.stderr).splitlines()
        tail = "\n".join(lines[-25:])
        reason = next((line[2:].strip() for line in reversed(lines) if line.startswith("E ")), "")
        raise SuiteFailedError(
            f"{tool} -n {workers} failed (exit {done.returncode}):\n{tail}",
            reason or f"exit {done.returncode}",
        )
    by_test: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows:
        by_test.setdefault(row["id"], {})[row["when"]] = row
    setups = sorted((t["setup"]["start"], t) for t in by_test.values() if "setup" in t)
    first = setups[0][1]
    isolation = [t["setup"]["duration"] + t["teardown"]["duration"] for _, t in setups]
    whole = [sum(t[w]["duration"] for w in ("setup", "call", "teardown")) for _, t in setups]
    calls = [t["call"]["start"] for _, t in setups if "call" in t]
    outcomes = [t["call"]["outcome"] for _, t in setups if "call" in t]
    last_end = max(t["teardown"]["start"] + t["teardown"]["duration"] for _, t in setups)
    return Run(
        tool=tool,
        workers=workers,
        wall=wall,
        first_test=min(calls) - launched,
        first_setup=first["setup"]["duration"],
        isolation_ms=statistics.median(isolation) * 1000,
        per_test_ms=statistics.median(whole) * 1000,
        passed=outcomes.count("passed"),
        failed=len(outcomes) - outcomes.count("passed"),
        before_tests=setups[0][0] - launched,
        tests=last_end - setups[0][0],
        after_tests=exited - last_end,
        cpu=cpu,
    )


def _children_cpu() -> float:
    """User + system CPU seconds of this script's finished descendants: pytest, its xdist
    workers and the servers they started (see :func:`become_subreaper`)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def become_subreaper() -> None:
    """Adopt the orphans of our descendants (a daemonised server, one whose xdist worker exited
    first), so that their CPU time is counted when :func:`_reap_orphans` collects them."""
    import ctypes

    pr_set_child_subreaper = 36
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) != 0:
        progress("cpu column counts pytest's own processes only (no PR_SET_CHILD_SUBREAPER)")


def _reap_orphans(grace: float = 5.0) -> None:
    """Wait (up to ``grace`` seconds) for the adopted orphans of a finished suite to exit."""
    deadline = time.monotonic() + grace
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no child left
        if pid == 0:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)


def median_run(rows: list[Run]) -> Run:
    """Each figure's median over repeated runs of one row."""
    first = rows[0]
    return Run(
        tool=first.tool,
        workers=first.workers,
        wall=statistics.median(r.wall for r in rows),
        first_test=statistics.median(r.first_test for r in rows),
        first_setup=statistics.median(r.first_setup for r in rows),
        isolation_ms=statistics.median(r.isolation_ms for r in rows),
        per_test_ms=statistics.median(r.per_test_ms for r in rows),
        before_tests=statistics.median(r.before_tests for r in rows),
        tests=statistics.median(r.tests for r in rows),
        after_tests=statistics.median(r.after_tests for r in rows),
        cpu=statistics.median(r.cpu for r in rows),
        passed=min(r.passed for r in rows),
        failed=max(r.failed for r in rows),
        note=f"median of {len(rows)}" if len(rows) > 1 else "",
    )


def pytest_mysql_path() -> Path | None:
    """Where pytest-mysql is importable from (installed there on first use), or ``None`` when
    MariaDB's server is missing."""
    if not shutil.which("mysqld_safe", path="/usr/bin:/usr/sbin:/usr/local/bin"):
        return None
    if not (PYTEST_MYSQL / "pytest_mysql").is_dir():
        progress(f"installing pytest-mysql into {PYTEST_MYSQL} (this benchmark's peer only)")
        packages = ["pytest-mysql>=5", "mirakuru>=2.6", "port-for>=0.7.3"]
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target"]
        subprocess.run([*pip, str(PYTEST_MYSQL), *packages], check=True)
    return PYTEST_MYSQL


def pytest_databases_path() -> Path:
    """Where pytest-databases is importable from (installed there on first use)."""
    if not (PYTEST_DATABASES / "pytest_databases").is_dir():
        progress(
            f"installing pytest-databases into {PYTEST_DATABASES} (this benchmark's peer only)"
        )
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target"]
        subprocess.run([*pip, str(PYTEST_DATABASES), "pytest-databases==0.19.0"], check=True)
    return PYTEST_DATABASES


def engine_env(name: str) -> dict[str, str]:
    """The environment that puts the plugin's services on engine ``name`` (its socket, which the
    suites' environment would otherwise not name: CLEANROOM_* is cleared)."""
    sys.path.insert(0, str(REPO / "src"))
    from pytest_cleanroom.services.engines import ENGINES

    variable = {"docker": "DOCKER_HOST", "podman": "CLEANROOM_PODMAN_HOST"}[name]
    return {"CLEANROOM_SERVICES": name, variable: ENGINES[name].host()}


def engine_ready(name: str) -> tuple[bool, str]:
    """Whether engine ``name`` answers and holds the project's images, and what was found."""
    sys.path.insert(0, str(REPO / "src"))
    from pytest_cleanroom.services.engines import ENGINES

    engine = ENGINES[name]
    ok, detail = engine.status()
    if not ok:
        return False, engine.with_fix(detail)
    out = subprocess.run(
        ["docker", "image", "inspect", *IMAGES],
        capture_output=True,
        check=False,
        env={**os.environ, "DOCKER_HOST": engine.host()},
    )
    return out.returncode == 0, detail if out.returncode == 0 else f"images missing ({detail})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=100, help="tests per suite (default 100)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--skip-docker", action="store_true", help="skip the Docker rows")
    parser.add_argument("--skip-podman", action="store_true", help="skip the Podman rows")
    parser.add_argument("--only", help="run only the rows whose label contains this text")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per row; the table shows medians (default 1)"
    )
    options = parser.parse_args()
    become_subreaper()

    work = Path(tempfile.mkdtemp(prefix="bench-services-", dir="/tmp"))
    os.chmod(work, 0o755)
    (work / "recorder").mkdir()
    (work / "recorder" / "bench_recorder.py").write_text(RECORDER)
    runtime = Path(tempfile.mkdtemp(prefix="crb-", dir="/tmp"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEANROOM_", "PYTEST_"))}
    base_env.pop("PYTHONDONTWRITEBYTECODE", None)
    base_env.update(
        # Each suite loads its own plugin alone (with -p below), not every plugin installed here.
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
        # Compiled (and assertion-rewritten) modules are cached, as on a developer's machine,
        # in the work directory rather than beside the sources.
        PYTHONPYCACHEPREFIX=str(work / "pycache"),
        PYTHONPATH=str(work / "recorder"),
        TESTCONTAINERS_RYUK_DISABLED="true",
        CLEANROOM_SERVICES_RUNTIME_DIR=str(runtime),
        XDG_CACHE_HOME=str(work / "cache"),
    )
    for name, body in SUITES.items():
        (work / name).mkdir()
        (work / name / "test_suite.py").write_text(textwrap.dedent(body.format(n=options.tests)))
    (work / "testcontainers" / "conftest.py").write_text(TESTCONTAINERS_CONFTEST)
    for name in ("pytest-databases", "pytest-databases-redis", "pytest-databases-mariadb"):
        (work / name / "conftest.py").write_text(PYTEST_DATABASES_CONFTEST)

    engines, skipped = [], []
    for name, skip in (("docker", options.skip_docker), ("podman", options.skip_podman)):
        ready, detail = (False, f"--skip-{name}") if skip else engine_ready(name)
        if ready:
            engines.append(name)
        else:
            skipped.append(f"{name} rows skipped: {detail}")
            progress(skipped[-1])
    have_docker = "docker" in engines

    pg_ctl = sorted(Path("/").glob(PG_CTL_GLOB.lstrip("/")))
    if not pg_ctl:
        raise SystemExit("pg_ctl not found (apt-get install postgresql)")
    pg_ctl_exec = str(pg_ctl[-1])
    if os.geteuid() == 0:
        wrapper = work / "pg_ctl"
        wrapper.write_text(PG_CTL_WRAPPER.format(pg_ctl=pg_ctl_exec))
        wrapper.chmod(0o755)
        pg_ctl_exec = str(wrapper)

    pg_exec = f"--postgresql-exec={pg_ctl_exec}"
    pg_peer = ["-p", "pytest_postgresql.plugin", pg_exec]
    cleanroom = ["-p", "cleanroom"]
    peers: list[str] = []
    plan: list[tuple[str, str, int, list[str], dict[str, str]]] = [
        ("cleanroom (process, cold cache)", "cleanroom", 0, cleanroom, {}),
        ("cleanroom (process)", "cleanroom", 0, cleanroom, {}),
        ("cleanroom (process)", "cleanroom", 2, cleanroom, {}),
        ("pytest-postgresql", "pytest-postgresql", 0, pg_peer, {}),
        ("pytest-postgresql", "pytest-postgresql", 2, pg_peer, {}),
        ("cleanroom redis (process)", "cleanroom-redis", 0, cleanroom, {}),
        ("cleanroom redis (process)", "cleanroom-redis", 2, cleanroom, {}),
    ]
    mysql_path = pytest_mysql_path()
    if mysql_path is None:
        progress("MariaDB rows skipped: no mysqld_safe (apt-get install mariadb-server)")
    else:
        # pytest-mysql runs mysqld_safe as the user it names; as root that is root.
        mysql_peer = ["-p", "pytest_mysql.plugin", "--mysql-mysqld=/usr/sbin/mariadbd"]
        mysql_peer += ["--mysql-dbname=bench"]  # mysql_install_db makes a "test" database
        mysql_env = {"PYTHONPATH": f"{work / 'recorder'}{os.pathsep}{mysql_path}"}
        plan += [
            ("cleanroom mysql (process)", "cleanroom-mysql", 0, cleanroom, {}),
            ("cleanroom mysql (process)", "cleanroom-mysql", 2, cleanroom, {}),
            ("pytest-mysql", "pytest-mysql", 0, mysql_peer, mysql_env),
            ("pytest-mysql", "pytest-mysql", 2, mysql_peer, mysql_env),
        ]
    # The cleanroom container rows, each engine's next to the other's.
    plan += [
        (f"cleanroom{what} ({engine})", suite, workers, cleanroom, engine_env(engine))
        for what, suite, workers in (
            ("", "cleanroom", 0),
            ("", "cleanroom", 2),
            (" redis", "cleanroom-redis", 0),
            (" mysql", "cleanroom-mysql", 0),
            (" mysql", "cleanroom-mysql", 2),
        )
        for engine in engines
    ]
    if have_docker:
        plan += [
            ("testcontainers", "testcontainers", 0, peers, {}),
            ("testcontainers", "testcontainers", 2, peers, {}),
        ]
        databases = ["-p", "pytest_databases._service"]
        databases_env = {"PYTHONPATH": f"{work / 'recorder'}{os.pathsep}{pytest_databases_path()}"}
        plan += [
            (f"pytest-databases{what} (docker)", suite, workers, databases, databases_env)
            for what, suite, workers in (
                ("", "pytest-databases", 0),
                ("", "pytest-databases", 2),
                (" redis", "pytest-databases-redis", 0),
                (" mariadb", "pytest-databases-mariadb", 0),
                (" mariadb", "pytest-databases-mariadb", 2),
            )
        ]
    if options.only:
        plan = [row for row in plan if options.only in row[0]]
    runs: list[Run] = []
    try:
        for label, suite, workers, args, extra in plan:
            repeat = 1 if "cold" in label else max(1, options.repeat)
            progress(f"{label} -n {workers} ({options.tests} tests, {repeat} run(s))")
            if "cold" in label:
                shutil.rmtree(work / "cache", ignore_errors=True)
            try:
                rows = [
                    run_suite(label, work / suite, workers, {**base_env, **extra}, args)
                    for _ in range(repeat)
                ]
            except SuiteFailedError as exc:
                if not label.startswith("pytest-databases"):
                    raise SystemExit(str(exc)) from None
                # A peer that cannot run here is a row that says why, not a missing row.
                progress(str(exc))
                runs.append(failed_run(label, workers, f"{exc.reason} (load {_load()})"))
                continue
            runs.append(median_run(rows))
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(runtime, ignore_errors=True)

    if options.json:
        print(json.dumps([asdict(r) for r in runs], indent=1))
        return 0
    print_table(runs, options.tests)
    for line in skipped:
        print(line)
    return 0


def print_table(runs: list[Run], n: int) -> None:
    head = (
        f"{'tool':34} {'-n':>2} {'first test':>10} {'1st setup':>9} {'isolation':>10} "
        f"{'per test':>9} {'suite':>7} {'before/tests/after':>18} {'cpu':>6} {'ok':>5}"
    )
    runs_note = next((r.note for r in runs if r.note.startswith("median")), "one run per row")
    print(f"\n{n} tests, each writing a table (Redis rows: 20 keys); {runs_note}")
    print(f"measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {_load()}")
    print(head)
    print("-" * len(head))
    for r in runs:
        if r.note.startswith("FAILED"):
            print(f"{r.tool:34} {r.workers:>2} {r.note}")
            continue
        print(
            f"{r.tool:34} {r.workers:>2} {r.first_test:>9.2f}s {r.first_setup:>8.3f}s "
            f"{r.isolation_ms:>8.1f}ms {r.per_test_ms:>7.1f}ms {r.wall:>6.2f}s "
            f"{r.before_tests:>6.2f}/{r.tests:>5.2f}/{r.after_tests:>4.2f}s {r.cpu:>5.1f}s "
            f"{r.passed:>3}/{r.passed + r.failed}"
        )
    _mysql_goals(runs)
    warm = [r for r in runs if r.tool == "cleanroom (process)"]
    redis = [r for r in runs if r.tool == "cleanroom redis (process)"]
    peer = {r.workers: r.wall for r in runs if r.tool == "pytest-postgresql"}
    print("\ngoals:")
    if warm:
        iso = max(r.isolation_ms for r in warm)
        print(f"  per-test isolated database < 40 ms median: {iso:.1f} ms")
        first = min(r.first_setup for r in warm if r.workers == 0)
        print(f"  first use of a cached process server < 1 s: {first:.3f} s")
        for r in warm:
            if r.workers in peer:
                verdict = "faster" if r.wall < peer[r.workers] else "NOT faster"
                print(
                    f"  whole suite -n {r.workers}: {r.wall:.2f} s vs pytest-postgresql "
                    f"{peer[r.workers]:.2f} s ({verdict})"
                )
    if redis:
        iso = max(r.isolation_ms for r in redis)
        print(f"  per-test Redis isolation < 5 ms median: {iso:.2f} ms")


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def _mysql_goals(runs: list[Run]) -> None:
    ours = {r.workers: r.wall for r in runs if r.tool == "cleanroom mysql (process)"}
    peer = {r.workers: r.wall for r in runs if r.tool == "pytest-mysql"}
    for workers in sorted(set(ours) & set(peer)):
        verdict = "faster" if ours[workers] < peer[workers] else "NOT faster"
        print(
            f"  mysql whole suite -n {workers}: {ours[workers]:.2f} s vs pytest-mysql "
            f"{peer[workers]:.2f} s ({verdict})"
        )


if __name__ == "__main__":
    sys.exit(main())
