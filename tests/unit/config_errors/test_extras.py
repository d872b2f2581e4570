"""The extras table names the extra that really installs each package (checked against
pyproject.toml, so no "pip install" hint can drift from the packaging)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

from pytest_cleanroom.config_errors.extras import (
    PROVIDERS,
    THROUGH,
    extra_of,
    install_hint,
    missing_extra,
)

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"
# Extras that only gather others, or add tools rather than packages ggen imports (drivers: the
# database drivers the services are tested with).
AGGREGATES = {"all", "dev", "xdist", "drivers"}


def _extras() -> dict[str, set[str]]:
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    return {
        extra: {re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower() for req in reqs}
        for extra, reqs in extras.items()
        if extra not in AGGREGATES
    }


def test_every_provider_is_in_the_extra_it_names() -> None:
    extras = _extras()
    for module, (distribution, extra) in PROVIDERS.items():
        assert distribution in extras.get(extra, set()), (module, distribution, extra)


def test_every_package_of_an_extra_has_a_provider() -> None:
    named = {(distribution, extra) for distribution, extra in PROVIDERS.values()}
    for extra, distributions in _extras().items():
        for distribution in distributions:
            assert (distribution, extra) in named, f"{distribution} of [{extra}] has no entry"


def test_an_installed_package_failing_inside_is_not_called_missing() -> None:
    # jinja2 is installed here: a missing piece of it is a broken install, not a missing extra.
    exc = ModuleNotFoundError("No module named 'jinja2.nothing'", name="jinja2.nothing")
    assert missing_extra(exc) is None


@pytest.mark.parametrize("name", ["tomli", "ggen_market.nothing", ""])
def test_modules_of_no_extra_are_left_alone(name: str) -> None:
    assert missing_extra(ModuleNotFoundError(name, name=name or None)) is None


def test_a_package_brought_by_another_names_the_extra_of_that_other() -> None:
    extras = _extras()
    for module, (_, extra) in THROUGH.items():
        assert extra in extras, module
        assert install_hint(module) == f"pip install 'pytest-cleanroom[{extra}]'"


def test_the_hint_names_the_extra_of_a_submodule_s_package() -> None:
    assert extra_of("yaml.nodes") == "market"
    assert install_hint("testcontainers.core") == "pip install 'pytest-cleanroom[docker]'"


def test_asking_for_a_package_no_extra_installs_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="no extra of pytest-cleanroom installs 'tomli'"):
        install_hint("tomli")


def test_a_missing_package_of_an_extra_names_it_and_the_pip_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every optional package is installed in the dev venv: a table entry for a package that
    # exists nowhere stands for one (tests/unit/cli/test_missing_extra.py blocks real ones).
    monkeypatch.setitem(PROVIDERS, "cleanroom_absent_pkg", ("absent-dist", "market"))
    fix = missing_extra(ModuleNotFoundError("absent", name="cleanroom_absent_pkg.sub"))
    assert fix == (
        "the absent-dist package is missing; it comes with the [market] extra: "
        "pip install 'pytest-cleanroom[market]'"
    )
