"""The scenario sub-plugin: the ``scenario`` marker and ``scenario_result`` fixture, collection of
``*.scenario.toml`` files, and the repeat check (``--cleanroom-repeat-check`` and the
``cleanroom_repeat_check`` marker).

Only pytest and the standard library are imported at module level; the rest loads on first use.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .state import CHECK_KEY, CHECKER_KEY, DEFERRED_ERROR_KEY, RESULT_KEY

if TYPE_CHECKING:
    from ..engine import Cleanroom
    from .model import Scenario
    from .result import ScenarioResult

# The snapshot fixtures (workspace_snapshot, cleanroom_snapshot) ride along with this sub-plugin.
pytest_plugins = ("pytest_cleanroom.snapshot.plugin",)

MARKER = "scenario"
REPEAT_MARKER = "cleanroom_repeat_check"
SUFFIXES = (".scenario.toml", ".scenario.yaml", ".scenario.yml")  # as scenarios.files


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cleanroom")
    group.addoption(
        "--cleanroom-repeat-check",
        action="store_true",
        default=None,
        dest="cleanroom_repeat_check",
        help="run every cleanroom command twice with the same seed, the second time in a copy of "
        "the workspace as it was before, and fail the test when the exit code, the output or the "
        "resulting workspace differ (ini: cleanroom_repeat_check)",
    )
    parser.addini(
        "cleanroom_repeat_check",
        type="bool",
        default=False,
        help="run every cleanroom command twice and compare (see --cleanroom-repeat-check)",
    )
    parser.addini(
        "cleanroom_scenario_files",
        type="bool",
        default=True,
        help="collect *.scenario.toml files as tests (default: true)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(scenario, *, matrix=None, check=True): run a Scenario, or a *.scenario.toml "
        "file (relative to the test file, then the rootdir), in the test's cleanroom before the "
        "test body; the result is the scenario_result fixture. A failing step fails the test "
        "unless check=False. matrix={...} picks one row of a file's [matrix].",
    )
    config.addinivalue_line(
        "markers",
        f"{REPEAT_MARKER}(enabled=True): run this test's cleanroom commands twice with the same "
        "seed and fail when they differ; cleanroom_repeat_check(False) opts out of "
        "--cleanroom-repeat-check.",
    )


# -- scenario files --------------------------------------------------------------------------------


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if not file_path.name.endswith(SUFFIXES) or not parent.config.getini(
        "cleanroom_scenario_files"
    ):
        return None
    from .items import ScenarioFile

    return ScenarioFile.from_parent(parent, path=file_path)


# -- the scenario marker ---------------------------------------------------------------------------


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test with ``@pytest.mark.scenario`` gets ``scenario_result`` even if it does not ask."""
    for item in items:
        if getattr(item, "variant", None) is not None:  # a scenario file's own item
            continue
        names = getattr(item, "fixturenames", None)
        if not isinstance(names, list) or "scenario_result" in names:
            continue
        if item.get_closest_marker(MARKER) is not None:
            names.append("scenario_result")


@pytest.fixture
def scenario_result(request: pytest.FixtureRequest) -> ScenarioResult:
    """The result of the test's ``@pytest.mark.scenario(...)``, run in the test's cleanroom."""
    from .result import ScenarioResult

    item = request.node
    mark = item.get_closest_marker(MARKER)
    if mark is None:
        pytest.fail(
            "the scenario_result fixture needs @pytest.mark.scenario(scenario or "
            "'path/x.scenario.toml') on the test",
            pytrace=False,
        )
    sc, check = _scenario_of(item, mark)
    # The cleanroom first: a service fixture binds its socket into the test's cleanroom only
    # when one is active.
    cleanroom: Cleanroom = request.getfixturevalue("cleanroom")
    for service in sc.services:  # started as for the fixtures, before the steps run
        request.getfixturevalue(service)
    from ..repeat.checker import RepeatCheckError

    try:
        result = cleanroom.run_scenario(sc)
    except RepeatCheckError as exc:
        item.stash[DEFERRED_ERROR_KEY] = exc
        result = ScenarioResult(name=sc.name, outcomes=(), source=sc.source)
    item.stash[RESULT_KEY] = result
    item.stash[CHECK_KEY] = check
    return result


def _scenario_of(item: pytest.Item, mark: pytest.Mark) -> tuple[Scenario, bool]:
    from .files import ScenarioFileError, load_scenario_file
    from .model import Scenario

    allowed = {"matrix", "check"}
    if len(mark.args) != 1 or set(mark.kwargs) - allowed:
        pytest.fail(
            f"{item.nodeid}: use @pytest.mark.scenario(scenario_or_path, matrix=None, check=True)",
            pytrace=False,
        )
    target = mark.args[0]
    check = bool(mark.kwargs.get("check", True))
    if isinstance(target, Scenario):
        return target, check
    if not isinstance(target, (str, Path)):
        pytest.fail(
            f"{item.nodeid}: @pytest.mark.scenario takes a Scenario or the path of a "
            f"*.scenario.toml file, not {type(target).__name__}",
            pytrace=False,
        )
    path = _resolve(item, Path(target))
    try:
        variants = load_scenario_file(path)
    except ScenarioFileError as exc:
        pytest.fail(f"{item.nodeid}: {exc}", pytrace=False)
    wanted = mark.kwargs.get("matrix")
    if wanted is None and len(variants) == 1:
        return variants[0].scenario, check
    rows = [v for v in variants if wanted is not None and _row_matches(v.params, wanted)]
    if len(rows) != 1:
        choices = "; ".join(str(dict(v.params)) for v in variants)
        pytest.fail(
            f"{item.nodeid}: {path} has {len(variants)} matrix rows; pick one with "
            f"@pytest.mark.scenario(..., matrix={{...}}) (rows: {choices})",
            pytrace=False,
        )
    return rows[0].scenario, check


def _row_matches(params: Any, wanted: Any) -> bool:
    return (
        isinstance(wanted, dict)
        and all(str(params.get(k)) == str(v) for k, v in wanted.items())
        and set(wanted) <= set(params)
    )


def _resolve(item: pytest.Item, path: Path) -> Path:
    if path.is_absolute():
        candidates = [path]
    else:
        candidates = [item.path.parent / path, item.config.rootpath / path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    pytest.fail(
        f"{item.nodeid}: scenario file {str(path)!r} not found (looked in: "
        f"{', '.join(str(c) for c in candidates)})",
        pytrace=False,
    )


# -- failing the test ------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    deferred = item.stash.get(DEFERRED_ERROR_KEY, None)
    if deferred is not None:
        pytest.fail(str(deferred), pytrace=False)
    result = item.stash.get(RESULT_KEY, None)
    if result is not None and item.stash.get(CHECK_KEY, False) and not result.ok:
        pytest.fail(result.failure_report(), pytrace=False)
    yield  # raises when the body did: that failure stands
    checker = item.stash.get(CHECKER_KEY, None)
    if checker is not None and checker.mismatches:
        # The body returned normally although the repeat check raised: it swallowed the error.
        pytest.fail(checker.mismatches[0].describe(), pytrace=False)


# -- the repeat check ------------------------------------------------------------------------------


def repeat_check_enabled(item: pytest.Item) -> bool:
    """The marker decides for its test; otherwise the option, then the ini key."""
    mark = item.get_closest_marker(REPEAT_MARKER)
    if mark is not None:
        return bool(mark.args[0]) if mark.args else bool(mark.kwargs.get("enabled", True))
    option = item.config.getoption("cleanroom_repeat_check")
    if option is not None:
        return bool(option)
    return bool(item.config.getini("cleanroom_repeat_check"))


@pytest.hookimpl(trylast=True)
def pytest_cleanroom_created(item: pytest.Item, cleanroom: Cleanroom) -> None:
    if not repeat_check_enabled(item):
        return
    from ..repeat.replay import attach_repeat_checker

    checker = attach_repeat_checker(cleanroom)
    item.stash[CHECKER_KEY] = checker
    item.addfinalizer(checker.close)
