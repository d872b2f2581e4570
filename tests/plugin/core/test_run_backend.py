"""The tests of a run share one reusable backend, and still see nothing of each other."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_cleanroom.backends import get_backend
from pytest_cleanroom.errors import BackendUnavailableError
from pytest_cleanroom.policy import Policy
from tests.conftest import require


def _require_bwrap() -> None:
    try:
        get_backend("bwrap", Policy.level("locked"))
    except BackendUnavailableError as exc:
        require(False, f"the bwrap backend: {exc}")


class _Rooms:
    """An inner run's plugin keeping every cleanroom the fixture made."""

    def __init__(self) -> None:
        self.rooms: list[Any] = []

    def pytest_cleanroom_created(self, item: pytest.Item, cleanroom: Any) -> None:
        self.rooms.append(cleanroom)


def test_the_tests_of_a_run_share_one_backend_closed_at_the_end(
    pytester: pytest.Pytester,
) -> None:
    _require_bwrap()
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("index", range(3))
        def test_runs(cleanroom, index):
            cleanroom.run(["true"]).assert_success()

        @pytest.mark.cleanroom(max_processes=16)
        def test_tighter(cleanroom):
            assert cleanroom.run(["true"]).assert_success().policy_name == "locked+max_processes"
        """
    )
    seen = _Rooms()
    result = pytester.runpytest(
        "--cleanroom-backend=bwrap", "--cleanroom-policy=locked", plugins=[seen]
    )
    result.assert_outcomes(passed=4)
    backends = {id(room.backend) for room in seen.rooms}
    assert len(seen.rooms) == 4
    assert len(backends) == 1  # the tighter policy too: bwrap was chosen, its instance is shared
    assert all(room.closed and room.backend_requested == "bwrap" for room in seen.rooms)
    # The run closed the shared backend: its launcher made ahead is gone, none is made again.
    preparer = seen.rooms[0].backend._preparer
    assert preparer._closed
    assert not preparer._ready


def test_a_test_does_not_find_what_an_earlier_test_left_running(
    pytester: pytest.Pytester,
) -> None:
    _require_bwrap()
    pytester.makepyfile(
        """
        from pytest_cleanroom.testing.leftovers import MARKER_VARIABLE, processes_with_marker

        MARKER = "left-by-test-a"

        def test_a(cleanroom):
            left = cleanroom.run(
                "setsid sleep 300 >/dev/null 2>&1 </dev/null & echo started",
                env={MARKER_VARIABLE: MARKER},
            )
            left.assert_success().assert_stdout_contains("started")

        def test_b(cleanroom):
            assert processes_with_marker(MARKER) == []
            assert cleanroom.run("ls /tmp").assert_success().stdout == ""
        """
    )
    result = pytester.runpytest(
        "--cleanroom-backend=bwrap", "--cleanroom-policy=locked", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=2)
