"""state.json: appends from many threads lose nothing; corruption is reported, never fatal."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from ggen_lifecycle import state
from ggen_lifecycle.state import StateStore


def test_parallel_appends_lose_nothing(tmp_path: Path) -> None:
    store = StateStore(tmp_path / ".ggen" / "state.json")

    def writer(n: int) -> None:
        for i in range(15):
            store.record_task({"phase": "build", "workspace": f"w{n}", "i": i})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tasks = store.read()["tasks"]
    assert len(tasks) == 90
    assert {(t["workspace"], t["i"]) for t in tasks} == {
        (f"w{n}", i) for n in range(6) for i in range(15)
    }
    # no temporary file is left behind
    assert sorted(p.name for p in (tmp_path / ".ggen").iterdir()) == [
        "state.json",
        "state.json.lock",
    ]


def test_corrupted_state_is_moved_aside_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"format": 1, "runs": [', encoding="utf-8")
    warnings: list[str] = []
    store = StateStore(path, warn=warnings.append)
    store.record_task({"phase": "build"})
    assert len(warnings) == 1
    assert "corrupted" in warnings[0]
    assert json.loads(path.read_text())["tasks"] == [{"phase": "build"}]
    aside = list(tmp_path.glob("state.json.corrupt-*"))
    assert len(aside) == 1
    assert aside[0].read_text() == '{"format": 1, "runs": ['


def test_state_of_the_wrong_shape_is_treated_as_corrupted(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"format": 1, "runs": {}, "tasks": 3}', encoding="utf-8")
    warnings: list[str] = []
    assert StateStore(path, warn=warnings.append).read()["tasks"] == []
    assert "must be a list" in warnings[0]


def test_run_records_are_updated_in_place(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    store.record_run({"run_id": "r1", "result": "running"})
    store.record_run({"run_id": "r1", "result": "failed"})
    assert store.read()["runs"] == [{"run_id": "r1", "result": "failed"}]


def _run(i: int) -> dict[str, object]:
    return {"run_id": f"r{i}", "phases": ["build"], "start": i + 0.5, "duration": 0.1, "tasks": 1}


def _task(i: int) -> dict[str, object]:
    return {"run_id": f"r{i}", "phase": "build", "result": "cached", "error": "a\nb \u2603"}


def test_appends_to_its_own_file_give_what_updates_give(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appended lines (the file is the one this store wrote) and full rewrites end in the same
    bytes, the oldest records dropped beyond the limit alike."""
    spliced, rewritten = StateStore(tmp_path / "a.json"), StateStore(tmp_path / "b.json")
    limit = 60
    monkeypatch.setattr(state, "MAX_RECORDS", limit)
    for i in range(0, limit + 30, 7):
        runs, tasks = [_run(j) for j in range(i, i + 7)], [_task(j) for j in range(i, i + 3)]
        spliced.append(runs, tasks)

        def change(data: dict[str, Any], runs: Any = runs, tasks: Any = tasks) -> None:
            data["runs"] += runs
            data["tasks"] += tasks

        rewritten.update(change)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    data = spliced.read()
    assert len(data["runs"]) == limit
    assert data["runs"][-1]["run_id"] == f"r{i + 6}"
    assert data["tasks"][-1]["error"] == "a\nb \u2603"

    def unparsed(raw: bytes) -> dict[str, Any]:
        raise AssertionError("an append to the store's own file parsed the history")

    monkeypatch.setattr(state, "parse_state", unparsed)
    spliced.append([_run(0)], [])
    assert json.loads((tmp_path / "a.json").read_text())["runs"][-1]["run_id"] == "r0"


@pytest.mark.parametrize("edit", ["corrupt", "reformat", "same size"])
def test_an_append_to_a_file_changed_by_another_hand_reads_it_whole(
    tmp_path: Path, edit: str
) -> None:
    """A state.json this store did not write last is read and checked as an update reads it:
    corruption is reported and moved aside, another layout keeps every record."""
    path = tmp_path / "state.json"
    store = StateStore(path)
    store.append([_run(1)], [_task(1)])
    if edit == "corrupt":
        path.write_text(path.read_text().replace('"r1"', "{{"))
    elif edit == "reformat":
        path.write_text(json.dumps(json.loads(path.read_text()), indent=4))
    else:  # the same bytes but one, in place: the inode stays, the times change
        text = path.read_text()
        with path.open("r+") as handle:
            handle.write(text.replace('"build"', '"b_ild"', 1))
    warnings: list[str] = []
    StateStore(path, warn=warnings.append).append([_run(2)], [])
    runs = [r["run_id"] for r in StateStore(path).read()["runs"]]
    if edit == "corrupt":
        assert runs == ["r2"]
        assert "corrupted" in warnings[0]
        assert len(list(tmp_path.glob("state.json.corrupt-*"))) == 1
    else:
        assert runs == ["r1", "r2"]
        assert warnings == []
