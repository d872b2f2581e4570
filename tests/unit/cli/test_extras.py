"""ggen_cli.extras names the extra that really installs each package (checked against
pyproject.toml, so the hint cannot drift from the packaging)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ggen_cli.extras import PROVIDERS, missing_extra
from ggen_market._toml import tomllib

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
