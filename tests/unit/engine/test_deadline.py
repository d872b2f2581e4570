"""The SIGALRM time limit ends a block even when the block swallows the first alarm, as rdflib
does with an exception raised inside an ORDER BY key."""

from __future__ import annotations

import time

import pytest

from pytest_cleanroom.deadline import DeadlineExceededError, time_limit


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_the_block_ends_at_its_limit() -> None:
    with pytest.raises(DeadlineExceededError, match=r"limit of 0\.2 s"), time_limit(0.2):
        _spin(30)


def _swallow_once_then_spin(swallowed: list[BaseException]) -> None:
    try:
        _spin(30)
    except Exception as exc:  # what a query engine's catch-all does
        swallowed.append(exc)
    _spin(30)
    pytest.fail("the block ran on after swallowing the first alarm")


def test_a_swallowed_alarm_comes_again() -> None:
    swallowed: list[BaseException] = []
    with pytest.raises(DeadlineExceededError), time_limit(0.2):
        _swallow_once_then_spin(swallowed)
    assert [type(e) for e in swallowed] == [DeadlineExceededError]


def test_no_alarm_after_the_block() -> None:
    with time_limit(0.2):
        pass
    _spin(1.0)  # a stray repeating alarm would raise here
