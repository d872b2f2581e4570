"""The gpack-bundles sub-plugin: installed test gpacks become part of the pytest run.

When the project (the rootdir, or ``--cleanroom-gpack-project`` / ini ``cleanroom_gpack_project``)
has a ``ggen.lock``, every test gpack it pins is verified against its lock digest, its fixture
modules are registered as plugins and its ``*.scenario.toml`` files are collected as
``gpack:id@version/...`` items marked ``gpack(id)``. Without a lockfile this module does nothing
and imports nothing beyond pytest and the standard library.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

from .bundle import RUN_KEY, Bundle, GpackRun

MARKER = "gpack"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cleanroom")
    group.addoption(
        "--cleanroom-gpacks",
        action="store_true",
        default=None,
        dest="cleanroom_gpacks",
        help="load the test gpacks pinned in ggen.lock and collect their scenarios even when "
        "paths are given on the command line (default: on when ggen.lock exists; scenarios are "
        "collected when no path, or the project's root, is given; ini: cleanroom_gpacks)",
    )
    group.addoption(
        "--no-cleanroom-gpacks",
        action="store_false",
        dest="cleanroom_gpacks",
        help="do not load test gpacks: neither their fixtures nor their scenarios",
    )
    group.addoption(
        "--cleanroom-gpack-project",
        dest="cleanroom_gpack_project",
        metavar="DIR",
        default=None,
        help="the directory whose ggen.lock pins the test gpacks (default: the rootdir; "
        "ini: cleanroom_gpack_project)",
    )
    parser.addini(
        "cleanroom_gpacks",
        type="bool",
        default=True,
        help="load the test gpacks pinned in ggen.lock (default: true)",
    )
    parser.addini(
        "cleanroom_gpack_project",
        type="string",
        default="",
        help="the directory holding ggen.lock, relative to the ini file (default: the rootdir)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(id, *, id, version): an item collected from an installed test gpack; select "
        f"with -m {MARKER} or -m \"{MARKER}(id='io.example.tests')\"",
    )
    if config.getoption("help", False):
        return
    option = config.getoption("cleanroom_gpacks")
    if option is False or (option is None and not config.getini("cleanroom_gpacks")):
        return
    project = project_dir(config)
    if not (project / "ggen.lock").is_file():
        return  # the common case: nothing to import, nothing to do
    bundles = _load(project)
    if not bundles:
        return
    _refuse_paths_into_packs(config, project, bundles)
    from .fixtures import register_fixture_modules

    register_fixture_modules(config, bundles)
    collect = option is True or _default_collection(config, project)
    config.stash[RUN_KEY] = GpackRun(project, bundles, collect)


def project_dir(config: pytest.Config) -> Path:
    """The option's directory (relative to the invocation directory), else the ini key's
    (relative to the ini file), else the rootdir."""
    option = config.getoption("cleanroom_gpack_project")
    if option:
        return (config.invocation_params.dir / str(option)).resolve()
    ini = str(config.getini("cleanroom_gpack_project")).strip()
    if ini:
        base = config.inipath.parent if config.inipath is not None else config.rootpath
        return (base / ini).resolve()
    return config.rootpath


def _load(project: Path) -> tuple[Bundle, ...]:
    try:
        from .loader import load_bundles
    except ModuleNotFoundError as exc:
        from pytest_cleanroom.config_errors.extras import install_command

        raise pytest.UsageError(
            f"cleanroom gpacks: {project / 'ggen.lock'} pins gpacks but ggen_market cannot be "
            f"imported ({exc}); install it with `{install_command('market')}`, or "
            "run with --no-cleanroom-gpacks"
        ) from None
    return load_bundles(project)


def _arg_paths(config: pytest.Config) -> list[Path]:
    if config.getoption("pyargs", False):
        return []
    base = config.invocation_params.dir
    return [(base / arg.split("::", 1)[0]).resolve() for arg in config.args]


def _default_collection(config: pytest.Config, project: Path) -> bool:
    """Without paths on the command line (or testpaths) the packs' scenarios are collected; with
    paths, only when one of them is the project or a directory above it."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return True
    project = project.resolve()
    return any(path == project or path in project.parents for path in _arg_paths(config))


def _refuse_paths_into_packs(
    config: pytest.Config, project: Path, bundles: tuple[Bundle, ...]
) -> None:
    """A path into ``.ggen`` that reaches a pack is refused: collected by path, its scenario files
    would run as plain files, without the pack's floor."""
    state = (project / ".ggen").resolve()
    roots = [(bundle, bundle.root.resolve()) for bundle in bundles]
    for path in _arg_paths(config):
        inside_state = path == state or state in path.parents
        for bundle, root in roots:
            if path == root or root in path.parents or (inside_state and path in root.parents):
                raise pytest.UsageError(
                    f"cleanroom gpacks: {path} is part of, or contains, the installed test gpack "
                    f"{bundle.label}; select its scenarios with -m \"{MARKER}(id='{bundle.id}')\" "
                    f"or -k {bundle.id} instead of a path"
                )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Walking the project never enters an installed pack (even with a custom norecursedirs):
    its scenarios are collected by the pack's own collector only."""
    run = config.stash.get(RUN_KEY, None)
    if run is not None and collection_path in run.roots:
        return True
    return None


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if isinstance(collector, pytest.Session) and report.passed:
        run = collector.config.stash.get(RUN_KEY, None)
        if run is not None and run.collect_scenarios:
            from .collect import pack_collectors

            assert isinstance(report.result, list)
            report.result.extend(pack_collectors(collector, run))
    return report


def pytest_report_header(config: pytest.Config) -> list[str]:
    run = config.stash.get(RUN_KEY, None)
    if run is None:
        return []
    lines = []
    for bundle in run.bundles:
        scenarios = f"{len(bundle.scenarios)} scenario file(s)"
        if bundle.scenarios and not run.collect_scenarios:
            scenarios += " not collected (paths given; --cleanroom-gpacks collects them)"
        lines.append(
            f"cleanroom gpack: {bundle.label} ({scenarios}, {len(bundle.fixtures)} fixture "
            f"module(s), floor {bundle.policy}) from {run.project / 'ggen.lock'}"
        )
    return lines
