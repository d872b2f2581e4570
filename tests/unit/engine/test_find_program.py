"""find_program: shutil.which remembered, but never a program that is gone or another PATH's."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cleanroom.backends.availability import find_program


def _program(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_a_program_is_found_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = _program(tmp_path / "bin", "cleanroom-probe-tool")
    monkeypatch.setenv("PATH", str(tool.parent))
    assert find_program("cleanroom-probe-tool") == str(tool)
    assert find_program("cleanroom-probe-tool") == str(tool)


def test_a_program_removed_since_is_not_returned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _program(tmp_path / "a", "cleanroom-probe-tool")
    second = _program(tmp_path / "b", "cleanroom-probe-tool")
    monkeypatch.setenv("PATH", f"{first.parent}:{second.parent}")
    assert find_program("cleanroom-probe-tool") == str(first)
    first.unlink()
    assert find_program("cleanroom-probe-tool") == str(second)
    second.chmod(0o644)  # no longer executable
    assert find_program("cleanroom-probe-tool") is None


def test_another_path_is_searched_afresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = _program(tmp_path / "bin", "cleanroom-probe-tool")
    monkeypatch.setenv("PATH", str(tool.parent))
    assert find_program("cleanroom-probe-tool") == str(tool)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_program("cleanroom-probe-tool") is None
