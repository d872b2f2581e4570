"""Version ranges as npm/cargo users write them."""

from __future__ import annotations

import pytest

from ggen_market.errors import VersionError
from ggen_market.versions import parse_range, parse_version

CASES = [
    ("^1.2", ["1.2.0", "1.9.9"], ["2.0.0", "1.1.9", "2.0.0-rc.1"]),
    ("^1.2.3", ["1.2.3", "1.99.0"], ["1.2.2", "2.0.0"]),
    ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "0.2.2"]),
    ("^0.0.3", ["0.0.3"], ["0.0.4"]),
    ("~1.2", ["1.2.0", "1.2.9"], ["1.3.0", "1.1.0"]),
    ("~1.2.3", ["1.2.3", "1.2.8"], ["1.3.0", "1.2.2"]),
    ("~1", ["1.0.0", "1.9.0"], ["2.0.0"]),
    (">=1.0,<2.0", ["1.0.0", "1.5.0"], ["2.0.0", "0.9.0"]),
    (">=1.0 <2.0", ["1.0.0"], ["2.0.0"]),
    (">1.2", ["1.3.0"], ["1.2.9", "1.3.0-rc.1"]),
    ("<=1.2", ["1.2.9", "0.1.0"], ["1.3.0"]),
    ("1.2.3", ["1.2.3"], ["1.2.4"]),
    ("=1.2.3", ["1.2.3"], ["1.2.4"]),
    ("1.x", ["1.0.0", "1.9.0"], ["2.0.0"]),
    ("1.2.*", ["1.2.5"], ["1.3.0"]),
    ("1.x || >=3", ["1.4.0", "3.1.0"], ["2.0.0"]),
    ("1.0.0 - 1.5", ["1.0.0", "1.5.9"], ["1.6.0"]),
    ("*", ["0.0.1", "9.0.0"], ["1.0.0-rc.1"]),
    ("", ["1.0.0"], []),
    ("^1.2.3-beta.2", ["1.2.3-beta.3", "1.2.3", "1.5.0"], ["1.2.4-beta.1", "1.2.3-beta.1"]),
]


@pytest.mark.parametrize(("text", "allowed", "refused"), CASES)
def test_range_semantics(text: str, allowed: list[str], refused: list[str]) -> None:
    rng = parse_range(text)
    for version in allowed:
        assert rng.allows(version), f"{text} should allow {version} ({rng.normalized()})"
    for version in refused:
        assert not rng.allows(version), f"{text} should refuse {version} ({rng.normalized()})"


def test_best_picks_highest_allowed() -> None:
    assert str(parse_range("^1.0").best(["0.9.0", "1.0.0", "1.4.2", "2.0.0"])) == "1.4.2"
    assert parse_range("^3").best(["1.0.0"]) is None


@pytest.mark.parametrize("bad", ["^^1", "1.2.3.4", ">=abc", "1.x.3", "~", "!=1.x"])
def test_bad_ranges_are_errors_naming_the_input(bad: str) -> None:
    with pytest.raises(VersionError, match="range"):
        parse_range(bad)


@pytest.mark.parametrize("bad", ["1.2", "v1.2.3", "01.2.3", "latest"])
def test_versions_must_be_complete_semver(bad: str) -> None:
    with pytest.raises(VersionError, match="not a semantic version"):
        parse_version(bad)


def test_semver_precedence() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "1.0.0-rc.1", "1.0.0", "1.0.1"]
    assert sorted(ordered, key=parse_version) == ordered
