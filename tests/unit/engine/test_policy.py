"""Policy levels, coercion, digests and the never-weaker merge used for markers."""

from __future__ import annotations

import importlib.util
import itertools
import sys

import pytest

from pytest_cleanroom.errors import PolicyError
from pytest_cleanroom.policy import LEVELS, Policy


def test_unknown_level_names_every_valid_level() -> None:
    with pytest.raises(PolicyError) as info:
        Policy.level("lockd")
    for name in LEVELS:
        assert name in str(info.value)


def test_levels_grow_stricter_in_order() -> None:
    for weaker, stricter in itertools.pairwise(LEVELS):
        assert Policy.level(stricter).is_at_least_as_strict_as(Policy.level(weaker))
        assert not Policy.level(weaker).is_at_least_as_strict_as(Policy.level(stricter))


def test_strict_and_locked_isolate_the_network() -> None:
    assert Policy.level("strict").network == "isolated"
    assert Policy.level("locked").network == "isolated"
    assert Policy.level("locked").env_allowlist == ()


@pytest.mark.parametrize(("a", "b"), list(itertools.product(LEVELS, LEVELS)))
def test_tightened_by_is_never_weaker_than_either_side(a: str, b: str) -> None:
    merged = Policy.level(a).tightened_by(Policy.level(b))
    assert merged.is_at_least_as_strict_as(Policy.level(a))
    assert merged.is_at_least_as_strict_as(Policy.level(b))
    assert merged.digest() == Policy.level(b).tightened_by(Policy.level(a)).digest()


def test_a_weaker_request_is_reported_field_by_field() -> None:
    locked = Policy.level("locked")
    loose = locked.replace(network="host", timeout=3600.0)
    assert set(loose.weakened_fields(locked)) == {"network", "timeout"}
    assert locked.tightened_by(loose).digest() == locked.digest()


def test_the_output_limit_merges_to_the_smaller_and_a_larger_one_is_a_weakening() -> None:
    locked = Policy.level("locked")
    assert locked.max_output is not None
    small = locked.replace(max_output=1024)
    assert small.tightened_by(locked).max_output == 1024
    assert locked.tightened_by(small).max_output == 1024
    assert locked.replace(max_output=None).weakened_fields(locked) == ["max_output"]


def test_digest_tracks_enforced_fields_not_the_name() -> None:
    standard = Policy.level("standard")
    assert standard.digest() == standard.model_copy(update={"name": "renamed"}).digest()
    assert standard.digest() != standard.replace(max_processes=10).digest()
    assert standard.digest().startswith("sha256:")


def test_coerce_accepts_names_dicts_and_policies() -> None:
    assert Policy.coerce(None).name == "standard"
    assert Policy.coerce("strict") is Policy.level("strict")
    custom = Policy.coerce({"level": "locked", "timeout": 5})
    assert custom.timeout == 5
    assert custom.network == "isolated"
    with pytest.raises(PolicyError, match="max_processes"):
        Policy.coerce({"max_processes": -1})


def test_coerce_keeps_every_field_of_a_policy_from_another_import() -> None:
    # pytester's in-process runs can leave a second copy of this module loaded; a Policy built
    # by that copy must keep its custom fields, not be rebuilt from its (composite) name.
    spec = importlib.util.find_spec("pytest_cleanroom.policy")
    assert spec is not None
    assert spec.loader is not None
    twin = importlib.util.module_from_spec(spec)
    sys.modules["_cleanroom_policy_twin"] = twin
    try:
        spec.loader.exec_module(twin)
        foreign = twin.Policy.level("strict").replace(name="strict+timeout", timeout=7.0)
        assert not isinstance(foreign, Policy)
        mine = Policy.coerce(foreign)
        assert isinstance(mine, Policy)
        assert mine.timeout == 7.0
        assert mine.digest() == foreign.digest()
    finally:
        del sys.modules["_cleanroom_policy_twin"]


def test_a_replaced_policy_is_named_after_its_level_and_what_changed() -> None:
    locked = Policy.level("locked")
    quick = locked.replace(timeout=5.0, memory_limit=256 * 1024 * 1024)
    assert quick.name == "locked+memory_limit+timeout"
    # A field changed again is not named twice; a new one is added.
    assert quick.replace(timeout=4.0).name == "locked+memory_limit+timeout"
    assert quick.replace(max_processes=10).name == "locked+memory_limit+timeout+max_processes"
    # A value equal to the level's changes nothing, so the name stays.
    assert locked.replace(timeout=locked.timeout).name == "locked"
    # An explicit name wins; a custom policy stays custom.
    assert locked.replace(timeout=5.0, name="quick").name == "quick"
    assert Policy(name="custom").replace(timeout=5.0).name == "custom"
    # The name is not enforced: it does not enter the digest.
    assert quick.digest() == quick.replace(name="other").digest()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"timeout": -1}, "invalid policy field timeout=-1: Input should be greater than 0"),
        (
            {"netwrk": "host"},
            "invalid policy field netwrk: not a policy field; did you mean 'network'?",
        ),
        (
            {"level": "strict", "network": "wifi"},
            "invalid policy field network='wifi': Input should be 'host' or 'isolated'",
        ),
        (
            {"readable_paths": ["/opt/tools", "cache"]},
            "invalid policy field readable_paths=['/opt/tools', 'cache']: host "
            "paths must be absolute ('cache' is not): give the whole path from /",
        ),
    ],
)
def test_a_policy_table_with_a_bad_field_is_one_line_naming_it(
    fields: dict[str, object], message: str
) -> None:
    # As a scenario's `policy = {...}` or a make.toml phase's cleanroom policy is written.
    with pytest.raises(PolicyError) as info:
        Policy.coerce(fields)
    assert str(info.value) == message
