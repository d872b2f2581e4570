"""Under pytest-xdist: one seed for every worker, and a complete summary on the controller."""

from __future__ import annotations

import re

import pytest

TESTS = """
import os
import pytest

@pytest.mark.parametrize("n", range(6))
def test_seed(cleanroom, n):
    worker = os.environ["PYTEST_XDIST_WORKER"]
    result = cleanroom.run(["sh", "-c", f"echo {n}"])
    result.assert_success()
    print(f"SEEN worker={worker} seed={cleanroom.seed} result_seed={result.seed}")
"""


def seen(result: pytest.RunResult) -> list[tuple[str, str, str]]:
    return re.findall(r"SEEN worker=(\w+) seed=(\d+) result_seed=(\d+)", result.stdout.str())


@pytest.mark.parametrize("seed_args", [[], ["--cleanroom-seed=77"]], ids=["random", "given"])
def test_workers_share_the_seed_and_the_summary_is_complete(
    pytester: pytest.Pytester, seed_args: list[str]
) -> None:
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dist", "load", "-rP", "--cleanroom-durations=10", *seed_args
    )
    result.assert_outcomes(passed=6)
    rows = seen(result)
    assert len(rows) == 6
    assert {worker for worker, _, _ in rows} == {"gw0", "gw1"}
    seeds = {seed for _, seed, _ in rows} | {seed for _, _, seed in rows}
    assert len(seeds) == 1
    (seed,) = seeds
    if seed_args:
        assert seed == "77"
    # The controller's header and replay line name the seed the workers used.
    header = re.search(r"^cleanroom: policy=.* seed=(\d+) ", result.stdout.str(), re.MULTILINE)
    assert header is not None
    assert header.group(1) == seed
    result.stdout.fnmatch_lines(
        [
            "*= slowest 6 of 6 sandboxed commands (cleanroom) =*",
            f"cleanroom seed {seed}: replay with --cleanroom-seed={seed}",
        ]
    )
    for n in range(6):
        result.stdout.fnmatch_lines(
            [f"*exit 0  test_workers_*.py::test_seed?{n}?  sh -c 'echo {n}'"]
        )
