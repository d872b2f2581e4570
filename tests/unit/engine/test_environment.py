"""build_environment: allow-list, fixed set, layers."""

from __future__ import annotations

import pytest

from pytest_cleanroom.environment import (
    FIXED_PATH,
    MAX_SEED,
    build_environment,
    fixed_environment,
    new_seed,
)

HOST = {"PATH": "/host/bin", "HOME": "/root", "SECRET": "s", "LANG": "C.UTF-8", "LC_ALL": "x"}


def test_host_dropped_fixed_set_present() -> None:
    env = build_environment(seed=3, allowlist=(), host=HOST)
    assert env == fixed_environment(3)
    assert env["PATH"] == FIXED_PATH
    assert env["PYTHONHASHSEED"] == "3"


def test_star_passes_host_but_not_locale_nor_fixed_names() -> None:
    env = build_environment(seed=3, allowlist=("*",), host=HOST)
    assert env["SECRET"] == "s"
    assert "LANG" not in env
    assert "LC_ALL" not in env
    assert env["PATH"] == FIXED_PATH
    assert env["HOME"] == "/workspace/.home"


def test_explicit_names_win_over_fixed_set() -> None:
    env = build_environment(seed=3, allowlist=("PATH", "LANG", "MISSING"), host=HOST)
    assert env["PATH"] == "/host/bin"
    assert env["LANG"] == "C.UTF-8"
    assert "MISSING" not in env


def test_layers_apply_in_order() -> None:
    env = build_environment(
        seed=3, allowlist=(), host=HOST, layers=({"A": "1", "B": "1"}, None, {"B": "2"})
    )
    assert (env["A"], env["B"]) == ("1", "2")


def test_large_seed_maps_into_pythonhashseed_range() -> None:
    env = fixed_environment(MAX_SEED + 5)
    assert env["PYTHONHASHSEED"] == "4"
    assert env["CLEANROOM_SEED"] == str(MAX_SEED + 5)


@pytest.mark.parametrize("bad", [{"": "x"}, {"A=B": "x"}, {"A": "nul\0"}])
def test_invalid_variables_are_rejected(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="invalid environment variable"):
        build_environment(seed=1, allowlist=(), host={}, layers=(bad,))


def test_non_str_values_are_rejected() -> None:
    with pytest.raises(TypeError, match="must be str"):
        build_environment(seed=1, allowlist=(), host={}, layers=({"A": 1},))  # type: ignore[dict-item]


def test_new_seed_in_range() -> None:
    seeds = {new_seed() for _ in range(50)}
    assert all(0 <= s <= MAX_SEED for s in seeds)
    assert len(seeds) > 1
