"""When a test's inputs are read: just before its cleanroom's first command, with the real engine
and a real signed envelope."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom
from pytest_cleanroom.attest.session import AttestSession
from pytest_cleanroom.attest.tracking import CleanroomWatch
from pytest_cleanroom.attest.verify import verify

pytestmark = pytest.mark.integration


def watched(tmp_path: Path) -> tuple[Cleanroom, CleanroomWatch, AttestSession]:
    room = Cleanroom(tmp_path / "ws", policy="standard")
    watch = CleanroomWatch.of_cleanroom(room)
    watch.snapshot_inputs(room)
    return room, watch, AttestSession.start(tmp_path / "att", None)


def subjects_and_inputs(watch: CleanroomWatch, directory: Path) -> tuple[list[str], list[str]]:
    """What the signed statement names: its subjects, and its inputs."""
    assert watch.envelope is not None
    envelope = json.loads((directory / watch.envelope.name).read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    build = statement["predicate"]["buildDefinition"]
    return (
        sorted(s["name"] for s in statement["subject"]),
        sorted(d["name"] for d in build["resolvedDependencies"]),
    )


def test_inputs_are_what_the_workspace_holds_at_the_first_command(tmp_path: Path) -> None:
    room, watch, session = watched(tmp_path)
    with room:
        assert watch.before is None  # nothing read yet: creating a cleanroom costs no hashing
        room.workspace.write("src/in.txt", "input\n")  # after creation, before any command
        watch.results.append(room.run("mkdir -p out && cp src/in.txt out/copy.txt"))
        room.workspace.write("later.txt", "written between commands\n")
        watch.results.append(room.run("echo 2 > out/two.txt"))
        watch.attest("t::test", session)
    assert subjects_and_inputs(watch, tmp_path / "att") == (
        ["later.txt", "out/copy.txt", "out/two.txt"],
        ["src/in.txt"],
    )
    report = verify(tmp_path / "att", key=tmp_path / "att" / "cleanroom-attest.pub")
    assert report.checks[0].checked_files == 4, report.failures()


def test_a_cleanroom_that_ran_nothing_produced_nothing(tmp_path: Path) -> None:
    room, watch, session = watched(tmp_path)
    with room:
        room.workspace.write("data.txt", "x")
        watch.attest("t::test", session)
    assert subjects_and_inputs(watch, tmp_path / "att") == (["workspace-tree"], ["data.txt"])
