"""Normalisers make what varies between runs and machines stable, and nothing else."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pytest_cleanroom.snapshot.normalise import Normaliser

BASE = "/tmp/pytest-of-alice/pytest-7"
TMP = f"{BASE}/test_build0"
WS = f"{TMP}/workspace"


def norm(**kwargs: object) -> Normaliser:
    return Normaliser.for_run(workspace=WS, tmp_path=TMP, basetemp=BASE, seed=3141592, **kwargs)  # type: ignore[arg-type]


def test_paths_become_placeholders_longest_first() -> None:
    text = f"{WS}/out.txt {TMP}/log {BASE}/other {WS}"
    assert norm()(text) == "<workspace>/out.txt <tmp_path>/log <basetemp>/other <workspace>"


def test_a_path_is_replaced_only_as_a_whole() -> None:
    assert norm()(f"{WS}2/x {WS}.bak") == "<tmp_path>/workspace2/x <tmp_path>/workspace.bak"


def test_another_machines_pytest_temp_and_mkdtemp_paths_are_replaced() -> None:
    tmp = tempfile.gettempdir()
    text = (
        f"/tmp/pytest-of-bob/pytest-123/test_x0/a {tmp}/tmpa1b2c3d4/f "
        "/tmp/pytest-of-bob/pytest-current"
    )
    assert norm()(text) == "<basetemp>/test_x0/a <tmp>/f <basetemp>"


def test_durations_and_timestamps() -> None:
    text = "built in 0.25s, linked in 12ms, 3 seconds total at 2026-11-21T19:11:28.123+00:00"
    assert norm()(text) == (
        "built in <duration>, linked in <duration>, <duration> total at <timestamp>"
    )


def test_durations_can_be_kept() -> None:
    assert norm(durations=False)("took 5s") == "took 5s"


def test_things_that_look_alike_survive() -> None:
    # A version number, an identifier with digits, a plain count: not durations.
    assert norm()("v1.2s3 x5s 42 files, sha 12ab") == "v1.2s3 x5s 42 files, sha 12ab"


def test_a_long_seed_is_replaced_wherever_it_stands_alone() -> None:
    text = "seed=3141592 PYTHONHASHSEED=3141592 value 3141592 but 31415920 and 3141592.5"
    assert norm()(text) == (
        "seed=<seed> PYTHONHASHSEED=<seed> value <seed> but 31415920 and 3141592.5"
    )


def test_a_short_seed_only_after_the_word_seed() -> None:
    n = Normaliser.for_run(seed=7)
    assert n("seed 7, 7 files, SEED=7") == "seed <seed>, 7 files, SEED=<seed>"


def test_extra_rules_and_bytes() -> None:
    n = Normaliser.for_run(extra=[(r"pid \d+", "pid <pid>")]).with_value("host-1", "<host>")
    assert n("pid 4711 on host-1") == "pid <pid> on <host>"
    assert n.normalise_bytes(b"pid 1 \xff") == b"pid 1 \xff"  # not UTF-8: unchanged
    assert n.normalise_bytes(b"pid 12") == b"pid <pid>"


def test_a_symlinked_path_is_recognised_in_its_resolved_form(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    n = Normaliser.for_run(workspace=link, temp_paths=False)
    assert n(f"{link}/a {real}/b") == "<workspace>/a <workspace>/b"
