"""The repeat check on the docker backend: the replay's copy is bind-mounted into its own
container, and what the containers write reaches the check through inotify on the host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_cleanroom import Cleanroom
from pytest_cleanroom.repeat.checker import RepeatCheckError
from pytest_cleanroom.repeat.replay import attach_repeat_checker
from tests.integration.docker.conftest import docker_client, local_images

__all__ = ["docker_client", "local_images"]  # fixtures, used by name

pytestmark = pytest.mark.integration


@pytest.mark.usefixtures("local_images")
def test_the_repeat_check_on_docker(tmp_path: Path, docker_client: Any) -> None:
    room = Cleanroom(tmp_path / "ws", policy="standard", seed=5, backend="docker")
    checker = attach_repeat_checker(room)
    try:
        (room.workspace.root / "in.txt").write_text("one\n")
        room.run("cat in.txt; mkdir -p out && echo o > out/a.txt").assert_success()
        (room.workspace.root / "in.txt").write_text("two\n")  # between commands
        room.run("cat in.txt >> out/a.txt").assert_success()
        assert room.workspace.read("out/a.txt") == "o\ntwo\n"
        with pytest.raises(RepeatCheckError, match=r"out/noise\.bin"):
            room.run("head -c 8 /dev/urandom > out/noise.bin")
        room.run("od -An -tx1 out/noise.bin").assert_success()  # from a fresh copy
        assert checker.units_checked == 4
        assert checker.overlay_units == 0
        assert len(checker.mismatches) == 1
    finally:
        checker.close()
        room.close()
