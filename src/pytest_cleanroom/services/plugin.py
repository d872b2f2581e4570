"""The services sub-plugin: ``postgres``, ``redis``, ``postgres_server``, ``redis_server``.

Options, report header, crash sweep at start, controller-side teardown at the end, server log
tails on failing tests, and sockets bound into a test's cleanroom. Cheap to import: psycopg,
redis-py and testcontainers load only when a fixture needs them.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from .errors import ServiceConfigError, ServiceError
from .hub import RunContext, ServiceHub, new_run_id, teardown_run
from .isolation import DatabaseFactory, RedisSlot
from .model import LogSource, PostgresDatabase, PostgresServer, RedisDatabase, RedisServer
from .mysql import MysqlDatabase, MysqlDatabaseFactory, MysqlServer
from .registry import Owner
from .settings import INI_KEYS, PROVIDERS, ServiceSettings

if TYPE_CHECKING:
    from .factories import Server

T = TypeVar("T")

SETTINGS_KEY = pytest.StashKey[ServiceSettings]()
HUB_KEY = pytest.StashKey[ServiceHub]()
SWEPT_KEY = pytest.StashKey[list[str]]()
RUN_KEY = pytest.StashKey[tuple[str, int]]()
TORN_DOWN_KEY = pytest.StashKey[bool]()
LOG_MARKS_KEY = pytest.StashKey[dict[str, tuple[LogSource, float, Callable[[str], str]]]]()
AT_EXIT_KEY = pytest.StashKey[Callable[[], None]]()

CHOICES_KEY = pytest.StashKey[dict[str, Any]]()
WORKER_RUN_ID = "cleanroom_services_run_id"
WORKER_CHOICES = "cleanroom_services_choices"
WORKER_OWNER_PID = "cleanroom_services_owner_pid"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cleanroom", "hermetic sandboxed commands (pytest-cleanroom)")
    group.addoption(
        "--cleanroom-services",
        dest="cleanroom_services",
        choices=PROVIDERS,
        default=None,
        help="Where the postgres/redis fixtures' servers come from: external URLs, a process "
        "started from the machine's binaries, or Docker containers. 'auto' (default) tries them "
        "in that order (ini: cleanroom_services, env: CLEANROOM_SERVICES).",
    )
    group.addoption(
        "--cleanroom-postgres-url",
        dest="cleanroom_postgres_url",
        default=None,
        metavar="URL",
        help="An existing PostgreSQL server (env: CLEANROOM_POSTGRES_URL); "
        "its user needs CREATEDB.",
    )
    group.addoption(
        "--cleanroom-redis-url",
        dest="cleanroom_redis_url",
        default=None,
        metavar="URL",
        help="An existing Redis server (env: CLEANROOM_REDIS_URL); tests use database "
        "<URL's db> + <worker number>.",
    )
    group.addoption(
        "--cleanroom-mysql-url",
        dest="cleanroom_mysql_url",
        default=None,
        metavar="URL",
        help="An existing MariaDB server (env: CLEANROOM_MYSQL_URL); its user needs CREATE USER "
        "and GRANT OPTION.",
    )
    for key, (text, default) in INI_KEYS.items():
        if key in (
            "cleanroom_postgres_template",
            "cleanroom_postgres_settings",
            "cleanroom_redis_settings",
        ):
            parser.addini(key, text, type="linelist", default=[])
        else:
            # Empty default: an unset key must not look like a choice made in the ini file.
            shown = f"{text} Default: {default}." if default else text
            parser.addini(key, shown, type="string", default="")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _base_dir(config: pytest.Config) -> Path:
    return config.inipath.parent if config.inipath else config.rootpath


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    try:
        settings = ServiceSettings.resolve(
            option=lambda name: config.getoption(name, None),
            ini=config.getini,
            env=os.environ,
            base_dir=_base_dir(config),
        )
    except ServiceConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SETTINGS_KEY] = settings
    if _is_worker(config):
        workerinput: dict[str, Any] = config.workerinput  # type: ignore[attr-defined]
        run_id = str(workerinput.get(WORKER_RUN_ID) or workerinput["testrunuid"][:8])
        owner_pid = int(workerinput.get(WORKER_OWNER_PID) or os.getppid())
        config.stash[RUN_KEY] = (run_id, owner_pid)
        if workerinput.get(WORKER_CHOICES):
            config.stash[CHOICES_KEY] = _choices_from_json(workerinput[WORKER_CHOICES])
        return
    config.stash[RUN_KEY] = (new_run_id(), os.getpid())
    config.stash[SWEPT_KEY] = _sweep(settings)

    def at_exit() -> None:  # a run that never reaches pytest_unconfigure still stops its servers
        _teardown(config)

    config.stash[AT_EXIT_KEY] = at_exit
    atexit.register(at_exit)


def _sweep(settings: ServiceSettings) -> list[str]:
    """Remove what crashed runs left (servers, data directories, containers)."""
    registry_dir = settings.runtime_dir / "registry"
    if not registry_dir.is_dir():
        return []
    from .cleanup import stop
    from .registry import Registry

    try:
        return Registry(settings.runtime_dir).sweep(stop)
    except ServiceError as exc:
        return [f"leftover sweep skipped: {exc}"]


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: hand the run id and owner to each worker."""
    run_id, owner_pid = node.config.stash[RUN_KEY]
    node.workerinput[WORKER_RUN_ID] = run_id
    node.workerinput[WORKER_OWNER_PID] = owner_pid
    # The controller chooses once for the whole run: a hung Docker engine is asked once, not
    # once per worker and service.
    node.workerinput[WORKER_CHOICES] = {
        name: choice.to_json() for name, choice in _choices(node.config).items()
    }


def _choices(config: pytest.Config) -> dict[str, Any]:
    """Where each kind's servers come from in this run (chosen once, on first need)."""
    choices = config.stash.get(CHOICES_KEY, None)
    if choices is None:
        from .providers import choose_all

        choices = config.stash[CHOICES_KEY] = choose_all(config.stash[SETTINGS_KEY])
    return choices


def _choices_from_json(data: dict[str, list[Any]]) -> dict[str, Any]:
    from .providers import Choice

    return {name: Choice(*values) for name, values in data.items()}


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None:
        return []
    parts = []
    for service, choice in _choices(config).items():
        parts.append(f"{service}={choice.provider or 'unavailable'} ({choice.reason})")
    lines = ["cleanroom services: " + "; ".join(parts)]
    lines += [f"cleanroom services: {msg}" for msg in config.stash.get(SWEPT_KEY, [])]
    return lines


def _shared_dir(config: pytest.Config) -> Path:
    factory = config._tmp_path_factory  # type: ignore[attr-defined]
    base: Path = factory.getbasetemp()
    # Under xdist each worker's basetemp is <controller's basetemp>/<worker id>.
    return base.parent if _is_worker(config) else base


def service_socket_dirs(config: pytest.Config) -> set[Path]:
    """The socket directories of this run's servers that this process has met (none started)."""
    hub = config.stash.get(HUB_KEY, None)
    return hub.socket_dirs() if hub is not None else set()


def hub_of(config: pytest.Config) -> ServiceHub:
    """This process's :class:`ServiceHub` (created on first use)."""
    hub = config.stash.get(HUB_KEY, None)
    if hub is None:
        run_id, owner_pid = config.stash[RUN_KEY]
        workerinput: dict[str, Any] = getattr(config, "workerinput", {})
        run = RunContext(
            run_id=run_id,
            owner=Owner.current(owner_pid),
            shared_dir=_shared_dir(config),
            worker_id=str(workerinput.get("workerid", "master")),
            worker_count=int(workerinput.get("workercount", 1)),
        )
        hub = ServiceHub(config.stash[SETTINGS_KEY], run, _choices(config))
        config.stash[HUB_KEY] = hub
    return hub


def _teardown(config: pytest.Config) -> list[str]:
    """Controller side: stop the run's servers (idempotent; also registered with atexit)."""
    if _is_worker(config) or config.stash.get(TORN_DOWN_KEY, False):
        return []
    config.stash[TORN_DOWN_KEY] = True
    if HUB_KEY in config.stash:
        state_dir = config.stash[HUB_KEY].run.state_dir
    elif getattr(config.option, "numprocesses", None) and RUN_KEY in config.stash:
        state_dir = _shared_dir(config) / "cleanroom-services"
    else:
        return []
    return teardown_run(state_dir)


# tryfirst: before pytest's own sessionfinish removes its basetemp's .lock, after which another
# pytest of the same user may delete that directory (an old numbered one) with the servers'
# state files in it. xdist's workers have finished their sessions by now.
@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    problems = _teardown(session.config)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for problem in problems:
        if reporter is not None:
            reporter.write_line(f"cleanroom services: {problem}", yellow=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    _teardown(config)
    at_exit = config.stash.get(AT_EXIT_KEY, None)
    if at_exit is not None:
        atexit.unregister(at_exit)


def _or_fail(produce: Callable[[], T]) -> T:
    """Run ``produce``; a ServiceError becomes one clear fixture error, without a traceback."""
    try:
        return produce()
    except ServiceError as exc:
        message = f"{type(exc).__name__}: {exc}"
    except ModuleNotFoundError as exc:
        from ..config_errors.extras import extra_of, install_hint

        top = (exc.name or "").partition(".")[0]
        if extra_of(top) is None:
            raise
        message = f"the {top} package is missing: {install_hint(top)}"
    pytest.fail(message, pytrace=False)  # outside the handler: no chained traceback


def _parent(socket: str | None) -> str | None:
    """The directory of a unix socket (``None``: the server has none)."""
    return str(Path(socket).parent) if socket else None


def _attach(
    request: pytest.FixtureRequest,
    service: str,
    database: PostgresDatabase | RedisDatabase | MysqlDatabase,
    socket_dir: str | None,
) -> None:
    """Tie a test's database to the test: the server's log from now on goes into the report if
    the test fails, and the socket directory is bound into the test's cleanroom, if it has one."""
    log = database.server.log
    marks = request.node.stash.setdefault(LOG_MARKS_KEY, {})
    marks[service] = (log, log.mark(), database.own_log_lines)
    if socket_dir is None or "cleanroom" not in request.fixturenames:
        return
    cleanroom = request.getfixturevalue("cleanroom")
    cleanroom.expose_service(service, Path(socket_dir), database.sandbox_env())


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> PostgresServer:
    """The run's PostgreSQL server, shared by every test and xdist worker."""
    hub = hub_of(request.config)
    return _or_fail(hub.postgres_server)


@pytest.fixture(scope="session")
def _cleanroom_database_factory(
    request: pytest.FixtureRequest, postgres_server: PostgresServer
) -> Iterator[DatabaseFactory]:
    hub = hub_of(request.config)
    template = _or_fail(hub.template)
    owner = template if template != "template0" and postgres_server.manages_roles else None
    factory = DatabaseFactory(
        postgres_server,
        template,
        f"{hub.run.db_prefix}{hub.run.worker_id}_",
        template_owner=owner,
        drop_leftovers=not _ends_with_the_run(postgres_server),
    )
    yield factory
    factory.close()


def _ends_with_the_run(server: PostgresServer) -> bool:
    """The server is the run's own (process, docker) and is removed, data and all, at its end."""
    return server.provider != "external"


@pytest.fixture
def postgres(
    request: pytest.FixtureRequest, _cleanroom_database_factory: DatabaseFactory
) -> Iterator[PostgresDatabase]:
    """A PostgreSQL database of this test's own, cloned from the run's template, then dropped."""
    factory = _cleanroom_database_factory
    database = _or_fail(factory.create)
    _attach(request, "postgres", database, database.unix_socket_dir)
    yield database
    factory.drop(database)


@pytest.fixture(scope="session")
def mysql_server(request: pytest.FixtureRequest) -> MysqlServer:
    """The run's MariaDB server, shared by every test and xdist worker."""
    return _or_fail(hub_of(request.config).mysql_server)


@pytest.fixture(scope="session")
def _cleanroom_mysql_factory(
    request: pytest.FixtureRequest, mysql_server: MysqlServer
) -> Iterator[MysqlDatabaseFactory]:
    run = hub_of(request.config).run
    factory = MysqlDatabaseFactory(mysql_server, f"{run.db_prefix}{run.worker_id}_")
    yield factory
    factory.close()


@pytest.fixture
def mysql(
    request: pytest.FixtureRequest, _cleanroom_mysql_factory: MysqlDatabaseFactory
) -> Iterator[MysqlDatabase]:
    """A MariaDB database and user of this test's own, dropped afterwards."""
    factory = _cleanroom_mysql_factory
    database = _or_fail(factory.create)
    _attach(request, "mysql", database, _parent(database.unix_socket))
    yield database
    factory.drop(database)


Pairs = tuple[tuple[str, str], ...]


@pytest.fixture(scope="session")
def _cleanroom_variants() -> Iterator[dict[Any, DatabaseFactory | RedisSlot]]:
    """The database factories and Redis slots of the fixture factories' servers (see
    :mod:`.factories`), closed at the end of the session."""
    variants: dict[Any, DatabaseFactory | RedisSlot] = {}
    yield variants
    for variant in variants.values():
        variant.close()


def _merged(base: Pairs, mine: Pairs) -> Pairs:
    """The ini's settings with a factory's on top."""
    return tuple(sorted({**dict(base), **dict(mine)}.items()))


def postgres_variant(
    request: pytest.FixtureRequest,
    pairs: Pairs,
    extensions: tuple[str, ...],
    binaries: Server | None = None,
) -> Iterator[PostgresDatabase]:
    """The body of a :func:`.factories.postgres` fixture."""
    from .factories import Server

    variants = request.getfixturevalue("_cleanroom_variants")
    binaries = binaries or Server()
    factory = variants.get(("postgres", pairs, extensions, binaries))
    if not isinstance(factory, DatabaseFactory):
        hub = hub_of(request.config)
        merged = _merged(hub.settings.postgres_settings, pairs)
        settings = hub.settings.with_changes(postgres_settings=merged)
        if binaries.bin_dir is not None or binaries.version is not None:
            # A factory's choice replaces the ini's: its bin_dir may hold another version.
            settings = settings.with_changes(
                postgres_bin_dir=binaries.bin_dir, postgres_version=binaries.version
            )
        if settings.postgres_identity != hub.settings.postgres_identity:
            settings = settings.with_changes(postgres_port=0)  # a fixed port is the plain one's
        server = _or_fail(lambda: hub.postgres_server(settings))
        template = _or_fail(lambda: hub.template(settings, extensions))
        owner = template if template != "template0" and server.manages_roles else None
        prefix = f"{hub.run.db_prefix}{hub.run.worker_id}_v{len(variants)}_"
        factory = DatabaseFactory(
            server,
            template,
            prefix,
            template_owner=owner,
            drop_leftovers=not _ends_with_the_run(server),
        )
        variants["postgres", pairs, extensions, binaries] = factory
    database = _or_fail(factory.create)
    _attach(request, "postgres", database, database.unix_socket_dir)
    yield database
    factory.drop(database)


def redis_variant(request: pytest.FixtureRequest, pairs: Pairs) -> Iterator[RedisDatabase]:
    """The body of a :func:`.factories.redis` fixture."""
    variants = request.getfixturevalue("_cleanroom_variants")
    slot = variants.get(("redis", pairs))
    if not isinstance(slot, RedisSlot):
        hub = hub_of(request.config)
        merged = _merged(hub.settings.redis_settings, pairs)
        settings = hub.settings.with_changes(redis_settings=merged)
        if merged != hub.settings.redis_settings:  # another server: a fixed port is the plain one's
            settings = settings.with_changes(redis_port=0)
        server = _or_fail(lambda: hub.redis_server(settings))
        index = 0 if server.dedicated else hub.run.worker_index
        run = hub.run
        made = _or_fail(lambda: RedisSlot(server, index, run.worker_id, dedicated=server.dedicated))
        slot = variants["redis", pairs] = made
    database = _or_fail(slot.acquire)
    _attach(request, "redis", database, _parent(database.unix_socket))
    yield database
    slot.release(database)


@pytest.fixture(scope="session")
def redis_server(request: pytest.FixtureRequest) -> RedisServer:
    """This xdist worker's Redis server (an external one is shared by every worker)."""
    hub = hub_of(request.config)
    return _or_fail(hub.redis_server)


@pytest.fixture(scope="session")
def _cleanroom_redis_slot(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> Iterator[RedisSlot]:
    run = hub_of(request.config).run
    index = 0 if redis_server.dedicated else run.worker_index
    slot = _or_fail(
        lambda: RedisSlot(redis_server, index, run.worker_id, dedicated=redis_server.dedicated)
    )
    yield slot
    slot.close()


@pytest.fixture
def redis(
    request: pytest.FixtureRequest, _cleanroom_redis_slot: RedisSlot
) -> Iterator[RedisDatabase]:
    """A Redis database index no other running test uses, emptied after the test."""
    slot = _cleanroom_redis_slot
    database = _or_fail(slot.acquire)
    _attach(request, "redis", database, _parent(database.unix_socket))
    yield database
    slot.release(database)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    """Before pytest-django's own ``django_db_setup`` (its dependencies are set up by now), point
    its PostgreSQL and MySQL databases at the run's servers. A project's own ``django_db_setup``
    (e.g. one that uses an existing database) is left alone, and everything under
    cleanroom_django=off."""
    if fixturedef.argname == "django_db_setup" and _is_pytest_djangos(fixturedef):
        settings = request.config.stash.get(SETTINGS_KEY, None)
        if settings is not None and settings.django:
            _redirect_django(request)
    return (yield)


def _is_pytest_djangos(fixturedef: pytest.FixtureDef[Any]) -> bool:
    return str(getattr(fixturedef.func, "__module__", "")).startswith("pytest_django.")


def _redirect_django(request: pytest.FixtureRequest) -> None:
    from .django_db import redirect_databases

    blocker = request.getfixturevalue("django_db_blocker")
    migrate = bool(request.getfixturevalue("django_db_use_migrations"))
    _or_fail(lambda: redirect_databases(hub_of(request.config), blocker.unblock, migrate))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for service, (log, mark, own) in item.stash.get(LOG_MARKS_KEY, {}).items():
            text = log.read(since=mark, keep=own)  # only what the server logged for this test
            if text.strip():
                report.sections.append(
                    (f"cleanroom {service} server log (since the test began)", text)
                )
    return report
