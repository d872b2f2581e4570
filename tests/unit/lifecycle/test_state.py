"""state.json: appends from many threads lose nothing; corruption is reported, never fatal."""

from __future__ import annotations

import json
import threading
from pathlib import Path

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
