"""The services sub-plugin: the fixtures of every service kind, built from its protocol.

For each registered kind (:mod:`.kinds`: ``postgres``, ``redis``, ``mysql`` and third parties'),
``<kind>_server`` (session) and ``<kind>`` (per test: isolated, exposed to the test's cleanroom,
reset afterwards), with no kind named here. Also options, report header, crash sweep at start,
controller-side teardown at the end, and the server's log lines and health on failing tests.
Cheap to import: psycopg, redis-py and testcontainers load only when a fixture needs them.
"""

from __future__ import annotations

import atexit
import os
import types
import warnings
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from .errors import DatabaseUrlWarning, ServiceConfigError, ServiceError, database_url_conflict
from .hub import RunContext, ServiceHub, new_run_id, teardown_run
from .protocol import Isolation, ServiceKind
from .registry import Owner
from .settings import INI_KEYS, PROVIDERS, ServiceSettings

T = TypeVar("T")

SETTINGS_KEY = pytest.StashKey[ServiceSettings]()
HUB_KEY = pytest.StashKey[ServiceHub]()
SWEPT_KEY = pytest.StashKey[list[str]]()
RUN_KEY = pytest.StashKey[tuple[str, int]]()
TORN_DOWN_KEY = pytest.StashKey[bool]()
#: Per test: each kind it used, with its handle, server and log position when it began.
USED_KEY = pytest.StashKey[dict[str, tuple[ServiceKind[Any, Any], Any, Any, float]]]()
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
    _register_fixtures(config)
    if _is_worker(config):
        workerinput: dict[str, Any] = config.workerinput  # type: ignore[attr-defined]
        run_id = str(workerinput.get(WORKER_RUN_ID) or workerinput["testrunuid"][:8])
        owner_pid = int(workerinput.get(WORKER_OWNER_PID) or os.getppid())
        config.stash[RUN_KEY] = (run_id, owner_pid)
        if workerinput.get(WORKER_CHOICES):
            config.stash[CHOICES_KEY] = _choices_from_json(workerinput[WORKER_CHOICES])
        return
    config.stash[RUN_KEY] = (new_run_id(), os.getpid())
    from .cleanup import sweep_leftovers

    config.stash[SWEPT_KEY] = sweep_leftovers(settings)

    def at_exit() -> None:  # a run that never reaches pytest_unconfigure still stops its servers
        _teardown(config)

    config.stash[AT_EXIT_KEY] = at_exit
    atexit.register(at_exit)


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


def _register_fixtures(config: pytest.Config) -> None:
    """``<kind>_server`` and ``<kind>`` for every registered kind (see :func:`kind_fixtures`)."""
    from .kinds import kinds

    try:
        registered = kinds()
    except ServiceConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    module = types.ModuleType(f"{__name__}.kind_fixtures", "The fixtures of the service kinds.")
    for kind in registered.values():
        for attribute, fixture in kind_fixtures(kind).items():
            setattr(module, attribute, fixture)
    config.pluginmanager.register(module, "cleanroom-service-kinds")


def kind_fixtures(kind: ServiceKind[Any, Any]) -> dict[str, Any]:
    """The fixtures of ``kind``: its server (session), this worker's isolation on it (session)
    and a handle per test."""
    name = kind.name

    def server(request: pytest.FixtureRequest) -> Any:
        return _or_fail(lambda: hub_of(request.config).server(name))

    def isolation(request: pytest.FixtureRequest) -> Iterator[Isolation[Any]]:
        made = request.getfixturevalue(f"{name}_server")
        isolated = _or_fail(lambda: kind.isolation(made, hub_of(request.config)))
        yield isolated
        isolated.close()

    def per_test(request: pytest.FixtureRequest) -> Iterator[Any]:
        isolated = request.getfixturevalue(f"_cleanroom_{name}_isolation")
        yield from use(request, kind, isolated, request.getfixturevalue(f"{name}_server"))

    server.__doc__, per_test.__doc__ = kind.server_doc, kind.fixture_doc
    return {
        f"{name}_server": pytest.fixture(scope="session", name=f"{name}_server")(server),
        f"{name}_isolation": pytest.fixture(scope="session", name=f"_cleanroom_{name}_isolation")(
            isolation
        ),
        name: pytest.fixture(name=name)(per_test),
    }


def use(
    request: pytest.FixtureRequest,
    kind: ServiceKind[Any, Any],
    isolation: Isolation[Any],
    server: Any,
) -> Iterator[Any]:
    """The body of every per-test service fixture (fixture factories' too): a handle of the
    test's own, tied to the test (see :func:`_attach`), reset after it."""
    handle = _or_fail(isolation.isolate)
    _attach(request, kind, handle, server)
    yield handle
    isolation.reset(handle)


def _attach(
    request: pytest.FixtureRequest, kind: ServiceKind[Any, Any], handle: Any, server: Any
) -> None:
    """Tie a test's handle to the test: the server's log from now on (and its health) goes into
    the report if the test fails, and what the kind exposes is bound into the test's cleanroom,
    if it has one."""
    used = request.node.stash.setdefault(USED_KEY, {})
    used[kind.name] = (kind, handle, server, kind.log_mark(handle))
    if "cleanroom" not in request.fixturenames:
        return
    exposure = hub_of(request.config).expose(kind, handle)
    if exposure.socket_dir is None:
        return
    cleanroom = request.getfixturevalue("cleanroom")
    cleanroom.expose_service(
        kind.name, exposure.socket_dir, exposure.env, database_url=exposure.database_url
    )
    conflict = database_url_conflict(s.name for s in cleanroom.services.values() if s.database_url)
    if conflict:
        warnings.warn(DatabaseUrlWarning(conflict), stacklevel=1)


@pytest.fixture(scope="session")
def _cleanroom_variants() -> Iterator[dict[Any, Isolation[Any]]]:
    """The isolations on the fixture factories' servers (see :mod:`.factories`), by what makes
    each one, closed at the end of the session."""
    variants: dict[Any, Isolation[Any]] = {}
    yield variants
    for variant in variants.values():
        variant.close()


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
        for name, (kind, handle, server, mark) in item.stash.get(USED_KEY, {}).items():
            text = kind.logs(handle, mark)  # only what the server logged for this test
            if text.strip():
                report.sections.append(
                    (f"cleanroom {name} server log (since the test began)", text)
                )
            problem = kind.health(server)
            if problem:
                report.sections.append((f"cleanroom {name} server", problem))
    return report
