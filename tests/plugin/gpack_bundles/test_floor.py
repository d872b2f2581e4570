"""A pack's [cleanroom] section is a floor for its scenarios: it tightens, it never weakens.

The probe is a host variable: ``permissive`` lets every host variable into the sandbox, ``strict``
none, so a step that prints it shows which policy it really ran under.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import write_test_gpack

pytestmark = pytest.mark.integration

PROBE_STEP = """
[[steps]]
name = "probe"
run = 'echo "[$GPACK_FLOOR_PROBE]"'
expect_stdout = '^{expected}$'
"""


def probe(name: str, expected: str, policy: str | None = None, extra: str = "") -> str:
    header = f'[scenario]\nname = "{name}"\n'
    if policy is not None:
        header += f'policy = "{policy}"\n'
    return header + extra + PROBE_STEP.format(expected=expected)


@pytest.fixture
def floor_packs(
    pytester: pytest.Pytester, tmp_path: Path, install_packs: Callable[..., None]
) -> Path:
    strict = write_test_gpack(
        tmp_path,
        "io.example.strict",
        cleanroom='policy = "strict"\ntimeout = 2\nenv = { GREETING = "from-pack", WHO = "pack" }',
        scenarios={
            # The scenario asks for permissive: the pack's strict floor wins.
            "asks-permissive.scenario.toml": probe("asks-permissive", r"\[\]", "permissive"),
            "env-defaults.scenario.toml": """\
                [scenario]
                name = "env-defaults"

                [[steps]]
                name = "greet"
                run = 'echo "$GREETING $WHO"'
                env = { WHO = "step" }
                expect_stdout = '^from-pack step$'
                """,
            "slow.scenario.toml": """\
                [scenario]
                name = "slow"
                timeout = 600

                [[steps]]
                name = "sleeps past the pack's timeout"
                run = ["sleep", "60"]
                """,
        },
    )
    lenient = write_test_gpack(
        tmp_path,
        "io.example.lenient",
        cleanroom='policy = "permissive"',
        scenarios={"no-policy.scenario.toml": probe("no-policy", r"\[\]")},
    )
    install_packs(pytester.path, strict, lenient)
    # The same permissive scenario as a plain file of the project: no pack, no floor.
    pytester.path.joinpath("plain.scenario.toml").write_text(
        probe("plain", r"\[leak\]", "permissive")
    )
    return pytester.path


def test_the_pack_floor_tightens_its_scenarios_only(
    pytester: pytest.Pytester, floor_packs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPACK_FLOOR_PROBE", "leak")
    result = pytester.runpytest("-v", "--cleanroom-policy=permissive")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines_random(
        [
            "plain.scenario.toml::plain PASSED*",  # the host variable leaks: permissive
            "gpack:io.example.strict@1.0.0/scenarios/asks-permissive.scenario.toml"
            "::asks-permissive PASSED*",  # it does not: strict
            "gpack:io.example.strict@1.0.0/scenarios/env-defaults.scenario.toml"
            "::env-defaults PASSED*",
            "gpack:io.example.lenient@1.0.0/scenarios/no-policy.scenario.toml"
            "::no-policy FAILED*",  # a permissive pack under a permissive run: it leaks
        ]
    )
    # The pack's timeout bounds its scenario's own, longer one.
    result.stdout.fnmatch_lines(
        ["gpack:io.example.strict@1.0.0/scenarios/slow.scenario.toml::slow FAILED*"]
    )
    assert "killed by the scenario timeout of 2s" in result.stdout.str()


def test_a_lenient_pack_cannot_weaken_the_run(
    pytester: pytest.Pytester, floor_packs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPACK_FLOOR_PROBE", "leak")
    result = pytester.runpytest("-v", "--cleanroom-policy=strict", "-k", "no-policy or plain")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines_random(
        [
            "gpack:io.example.lenient@1.0.0/scenarios/no-policy.scenario.toml::no-policy PASSED*",
            "plain.scenario.toml::plain FAILED*",  # the run's strict floor holds for it too
        ]
    )


def test_the_pack_services_are_requested_by_its_scenarios(
    pytester: pytest.Pytester, tmp_path: Path, install_packs: Callable[..., None]
) -> None:
    pack = write_test_gpack(
        tmp_path,
        "io.example.cache",
        cleanroom='policy = "standard"\nservices = ["redis"]',
        scenarios={"s.scenario.toml": probe("uses-redis", ".*")},
    )
    install_packs(pytester.path, pack)
    # Listing the fixtures each test uses starts no server.
    result = pytester.runpytest("--fixtures-per-test")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*fixtures used by uses-redis*",
            "cleanroom -- *",
            "redis -- *",
        ],
        consecutive=False,
    )
