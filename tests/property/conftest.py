"""Property tests of every parser the market and the engine expose to untrusted input.

Profiles: ``ci`` (the default: few examples, derandomized so a run is reproducible, no per-example
deadline that a loaded 2-core machine would trip) and ``thorough`` (``HYPOTHESIS_PROFILE=thorough``
for a long local run). Each example runs under :func:`bounded`: a time limit, and the process's
peak memory checked after it.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from typing import TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from pytest_cleanroom.deadline import time_limit

T = TypeVar("T")

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "thorough",
    max_examples=1000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: Seconds one example may take, and the peak memory (MiB) the test process may reach.
EXAMPLE_SECONDS = 20
PEAK_MIB = 1500


def bounded(work: Callable[[], T], allowed: tuple[type[BaseException], ...]) -> T | None:
    """``work()``: its result, or ``None`` if it raised one of the ``allowed`` (the project's own
    typed errors). Anything else fails the test, as does a hang or a memory peak."""
    try:
        with time_limit(EXAMPLE_SECONDS):  # past it: DeadlineExceededError, a hang, fails the test
            return work()
    except allowed:
        return None
    finally:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        assert peak < PEAK_MIB, f"peak memory {peak:.0f} MiB"


def mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    """``seed`` and damaged copies of it: bytes flipped, cut, inserted or spliced."""

    def mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
        buffer = bytearray(data)
        for kind, where, chunk in edits:
            at = where % (len(buffer) + 1)
            if kind == 0:
                buffer[at : at + len(chunk)] = chunk
            elif kind == 1:
                buffer[at:at] = chunk
            elif kind == 2:
                del buffer[at : at + 1 + len(chunk)]
            else:
                buffer = buffer[:at]
        return bytes(buffer)

    nasty = st.sampled_from(
        [b"\x00", b"\xff", b"\x7f", b"\n", b'"', b"[", b"{", b"\\", b"..", b"/", b"9" * 400]
    )
    chunk = st.one_of(st.binary(max_size=16), nasty)
    edit = st.tuples(st.integers(0, 3), st.integers(0, 1 << 16), chunk)
    return st.builds(mutate, st.just(seed), st.lists(edit, max_size=6))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
