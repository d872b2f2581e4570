"""Every ``--cleanroom-*`` flag and its ini key: values, precedence, defaults and bad input."""

from __future__ import annotations

import re

import pytest

from pytest_cleanroom.backends import backend_names
from pytest_cleanroom.policy import LEVELS, Policy
from pytest_cleanroom.pytest_plugin.settings import CleanroomSettings

# An inner test that prints the settings the plugin resolved, one per line, for the outer test.
SHOW_SETTINGS = """
def test_show(cleanroom_settings):
    s = cleanroom_settings
    print()
    print("SETTING policy", s.policy_name)
    print("SETTING backend", s.backend)
    print("SETTING seed", s.seed)
    print("SETTING timeout", s.timeout)
    print("SETTING durations", s.durations)
    print("SETTING policy_timeout", s.policy.timeout)
    print("SETTING digest", s.policy.digest())
    print("SETTING sources", sorted(s.sources.items()))
"""


def settings_of(result: pytest.RunResult) -> dict[str, str]:
    result.assert_outcomes(passed=1)
    found = {}
    for line in result.outlines:
        if line.startswith("SETTING "):
            _, key, value = line.split(" ", 2)
            found[key] = value
    return found


def test_defaults(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SHOW_SETTINGS)
    found = settings_of(pytester.runpytest("-s"))
    assert found["policy"] == "standard"
    assert found["backend"] == "auto"
    assert found["timeout"] == "None"
    assert found["durations"] == "5"
    assert found["policy_timeout"] == str(Policy.level("standard").timeout)
    assert found["digest"] == Policy.level("standard").digest()
    assert "('seed', 'random')" in found["sources"]


@pytest.mark.parametrize(
    ("flag", "ini_key", "value", "setting", "shown"),
    [
        ("--cleanroom-policy", "cleanroom_policy", "locked", "policy", "locked"),
        ("--cleanroom-backend", "cleanroom_backend", "unshare", "backend", "unshare"),
        ("--cleanroom-seed", "cleanroom_seed", "1234", "seed", "1234"),
        ("--cleanroom-timeout", "cleanroom_timeout", "7.5", "timeout", "7.5"),
        ("--cleanroom-durations", "cleanroom_durations", "0", "durations", "0"),
    ],
)
@pytest.mark.parametrize("via", ["flag", "ini"])
def test_each_option_as_flag_and_ini_key(
    pytester: pytest.Pytester,
    via: str,
    flag: str,
    ini_key: str,
    value: str,
    setting: str,
    shown: str,
) -> None:
    pytester.makepyfile(SHOW_SETTINGS)
    if via == "flag":
        result = pytester.runpytest("-s", f"{flag}={value}")
    else:
        pytester.makeini(f"[pytest]\n{ini_key} = {value}\n")
        result = pytester.runpytest("-s")
    found = settings_of(result)
    assert found[setting] == shown
    assert f"('{setting}', '{'option' if via == 'flag' else 'ini'}')" in found["sources"]


def test_flag_overrides_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncleanroom_policy = strict\ncleanroom_seed = 5\n")
    pytester.makepyfile(SHOW_SETTINGS)
    found = settings_of(pytester.runpytest("-s", "--cleanroom-policy=locked"))
    assert found["policy"] == "locked"
    assert found["seed"] == "5"


def test_timeout_replaces_the_policy_timeout(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SHOW_SETTINGS)
    found = settings_of(
        pytester.runpytest("-s", "--cleanroom-policy=locked", "--cleanroom-timeout=9")
    )
    assert found["policy_timeout"] == "9.0"
    # The timeout is part of what is enforced, so the digest changes with it.
    assert found["digest"] == Policy.level("locked").replace(timeout=9.0).digest()
    assert found["digest"] != Policy.level("locked").digest()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--cleanroom-policy=loose"],
            "argument --cleanroom-policy: invalid choice: 'loose' (choose from "
            "'permissive', 'standard', 'strict', 'locked')",
        ),
        (["--cleanroom-backend=vm"], "argument --cleanroom-backend: invalid choice: 'vm'"),
        (["--cleanroom-seed=abc"], "argument --cleanroom-seed: 'abc' is not an integer"),
        (["--cleanroom-seed=-1"], "argument --cleanroom-seed: -1 is outside 0..4294967295"),
        (["--cleanroom-seed=4294967296"], "outside 0..4294967295"),
        (["--cleanroom-timeout=0"], "argument --cleanroom-timeout: '0' must be a positive"),
        (["--cleanroom-timeout=nan"], "'nan' must be a positive, finite number of seconds"),
        (["--cleanroom-timeout=soon"], "'soon' is not a number of seconds"),
        (["--cleanroom-durations=-2"], "argument --cleanroom-durations: -2 is negative"),
    ],
)
def test_bad_flag_is_a_usage_error(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile(SHOW_SETTINGS)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "cleanroom_policy = loose",
            "cleanroom_policy in {ini}: invalid choice 'loose' "
            "(choose from permissive, standard, strict, locked)",
        ),
        (
            "cleanroom_backend = vm",
            "cleanroom_backend in {ini}: invalid choice 'vm' "
            f"(choose from {', '.join(backend_names())})",
        ),
        ("cleanroom_seed = 1.5", "cleanroom_seed in {ini}: '1.5' is not an integer"),
        ("cleanroom_timeout = -3", "cleanroom_timeout in {ini}: '-3' must be a positive"),
        ("cleanroom_durations = many", "cleanroom_durations in {ini}: 'many' is not an integer"),
    ],
)
def test_bad_ini_value_is_a_usage_error_naming_the_file(
    pytester: pytest.Pytester, line: str, message: str
) -> None:
    ini = pytester.makeini(f"[pytest]\n{line}\n")
    pytester.makepyfile(SHOW_SETTINGS)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message.format(ini=ini) in result.stderr.str()


def test_help_works_despite_a_bad_ini_value(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncleanroom_policy = loose\n")
    result = pytester.runpytest("--help")
    assert result.ret == pytest.ExitCode.OK
    assert "--cleanroom-policy" in result.stdout.str()


def test_pyproject_toml_keys(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\ncleanroom_policy = "strict"\ncleanroom_seed = "42"\n'
    )
    pytester.makepyfile(SHOW_SETTINGS)
    found = settings_of(pytester.runpytest("-s"))
    assert (found["policy"], found["seed"]) == ("strict", "42")


def test_random_seed_is_fresh_per_run_and_shared_by_its_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_one(cleanroom_settings):
            print("SEED", cleanroom_settings.seed)

        def test_two(cleanroom_settings):
            print("SEED", cleanroom_settings.seed)
        """
    )

    def seeds() -> set[str]:
        result = pytester.runpytest("-s")
        result.assert_outcomes(passed=2)
        return set(re.findall(r"SEED (\d+)", result.stdout.str()))

    first, second = seeds(), seeds()
    assert len(first) == 1
    assert len(second) == 1
    # Two random 32-bit seeds collide once in 4 billion runs.
    assert first != second


def test_help_lists_every_flag_and_ini_key(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    out = result.stdout.str()
    for flag in (
        "--cleanroom-policy",
        "--cleanroom-backend",
        "--cleanroom-seed",
        "--cleanroom-timeout",
        "--cleanroom-durations",
    ):
        assert flag in out
    for key in (
        "cleanroom_policy",
        "cleanroom_backend",
        "cleanroom_seed",
        "cleanroom_timeout",
        "cleanroom_durations",
    ):
        assert f"{key} (string)" in out


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.cleanroom(policy=None, **fields): *"])


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(
    ("timeout", "readable"), [(None, ()), (2.5, ()), (None, ("/opt/tools",)), (7.0, ("/srv/x",))]
)
def test_the_headers_policy_name_and_timeout_are_the_policys_own(
    level: str, timeout: float | None, readable: tuple[str, ...]
) -> None:
    # The header reads them without pydantic; they must be what the Policy model says.
    settings = CleanroomSettings(
        policy_name=level,
        backend="auto",
        seed=1,
        timeout=timeout,
        durations=5,
        readable_paths=readable,
    )
    assert settings.policy_label == settings.policy.name
    assert settings.policy_timeout == settings.policy.timeout
