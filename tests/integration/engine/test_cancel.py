"""Cleanroom.cancel(): running commands stop, whole trees die, results say so, the room lives on."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, RunResult
from pytest_cleanroom.testing.leftovers import (
    MARKER_VARIABLE,
    busy_cgroups_of_process,
    processes_with_marker,
)

pytestmark = pytest.mark.integration

# Only guards against a hang; the tests assert behaviour, never speed.
HANG_GUARD = 60.0


def _wait_for(predicate: object, what: str) -> None:
    end = time.monotonic() + HANG_GUARD
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.02)


def _start(room: Cleanroom, command: str, marker: str) -> tuple[threading.Thread, list[RunResult]]:
    """Run ``command`` in a thread of its own; its result lands in the returned list."""
    results: list[RunResult] = []

    def work() -> None:
        results.append(room.run(command, env={MARKER_VARIABLE: marker}))

    thread = threading.Thread(target=work)
    thread.start()
    return thread, results


def test_cancel_kills_the_whole_tree_and_says_cancelled(tmp_path: Path, backend: str) -> None:
    marker = uuid.uuid4().hex
    with Cleanroom(tmp_path, backend=backend) as room:
        # A tree: two background sleeps and one in a subshell that detaches from the shell.
        worker, results = _start(room, "sleep 300 & (sleep 300 &) ; sleep 300", marker)
        _wait_for(lambda: len(processes_with_marker(marker)) >= 3, "the tree to start")
        assert room.cancel() == 1
        # cancel() returns once the command has returned: nothing of it is left.
        assert processes_with_marker(marker) == []
        worker.join(HANG_GUARD)
        assert not worker.is_alive()
        (result,) = results
        assert result.cancelled
        assert not result.succeeded
        assert not result.timed_out
        assert result.exit_code == 137
        assert "(cancelled)" in result.describe()
        # The cleanroom stays usable and later commands are not cancelled.
        after = room.run("echo still here")
        after.assert_success().assert_stdout_contains("still here")
        assert not after.cancelled
        assert [r.cancelled for r in room.history] == [True, False]
    assert busy_cgroups_of_process(os.getpid()) == []


def test_cancel_stops_every_concurrent_command(tmp_path: Path, backend: str) -> None:
    marker = uuid.uuid4().hex
    with Cleanroom(tmp_path, backend=backend) as room:
        started = [_start(room, "sleep 300 & wait", marker) for _ in range(3)]
        _wait_for(lambda: len(processes_with_marker(marker)) >= 6, "three commands to start")
        assert room.cancel() == 3
        for worker, _ in started:
            worker.join(HANG_GUARD)
        assert all(results[0].cancelled for _, results in started)
        assert processes_with_marker(marker) == []


def test_cancel_with_nothing_running_cancels_nothing(tmp_path: Path, backend: str) -> None:
    with Cleanroom(tmp_path, backend=backend) as room:
        assert room.cancel() == 0
        result = room.run("true")
        result.assert_success()
        assert not result.cancelled


def test_a_set_cancel_event_keeps_the_command_from_starting(tmp_path: Path, backend: str) -> None:
    event = threading.Event()
    event.set()
    with Cleanroom(tmp_path, backend=backend, cancel_event=event) as room:
        result = room.run("touch ran")
        assert result.cancelled
        assert result.exit_code == 137
        assert "cancelled before it started" in result.stderr
        assert not (tmp_path / "ran").exists()
        event.clear()
        room.run("touch ran").assert_success()
        assert (tmp_path / "ran").exists()


def test_event_then_cancel_cannot_miss_a_command_about_to_start(
    tmp_path: Path, backend: str
) -> None:
    """The race a scheduler has: it sets the event and cancels while a worker thread is
    between "should I start?" and run(). Whatever the interleaving, the command is stopped."""
    for _ in range(5):
        marker = uuid.uuid4().hex
        event = threading.Event()
        with Cleanroom(tmp_path, backend=backend, cancel_event=event) as room:
            go = threading.Barrier(2)
            results: list[RunResult] = []

            def work(
                room: Cleanroom = room,
                marker: str = marker,
                go: threading.Barrier = go,
                results: list[RunResult] = results,
            ) -> None:
                go.wait()
                results.append(room.run("sleep 300", env={MARKER_VARIABLE: marker}))

            worker = threading.Thread(target=work)
            worker.start()
            go.wait()
            event.set()
            room.cancel()
            worker.join(HANG_GUARD)
            assert not worker.is_alive()
            assert results[0].cancelled
            assert processes_with_marker(marker) == []


def test_cancel_from_many_threads_at_once(tmp_path: Path, backend: str) -> None:
    marker = uuid.uuid4().hex
    with Cleanroom(tmp_path, backend=backend) as room:
        worker, results = _start(room, "sleep 300", marker)
        _wait_for(lambda: processes_with_marker(marker), "the command to start")
        cancellers = [threading.Thread(target=room.cancel) for _ in range(4)]
        for thread in cancellers:
            thread.start()
        for thread in cancellers:
            thread.join(HANG_GUARD)
        worker.join(HANG_GUARD)
        assert results[0].cancelled
        assert processes_with_marker(marker) == []
        room.run("true").assert_success()
