"""The backend registry: names, aliases, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom
from pytest_cleanroom.backends import BACKEND_NAMES, get_backend
from pytest_cleanroom.errors import BackendUnavailableError, PolicyError
from pytest_cleanroom.policy import Policy


def test_names() -> None:
    assert BACKEND_NAMES == ("auto", "local", "bwrap", "unshare", "docker")


def test_unknown_backend_lists_the_choices() -> None:
    with pytest.raises(BackendUnavailableError, match=r"unknown cleanroom backend 'podman'.*auto"):
        get_backend("podman")


def test_unknown_policy_names_the_levels() -> None:
    with pytest.raises(PolicyError, match=r"unknown cleanroom policy 'lockd'.*locked"):
        Policy.level("lockd")


def test_bwrap_missing_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BackendUnavailableError, match="install bubblewrap"):
        get_backend("bwrap", Policy.level("locked"))


def test_refused_backend_leaves_no_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BackendUnavailableError):
        Cleanroom(tmp_path / "ws", backend="bwrap")
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize("bad", [0, -1.5])
def test_invalid_timeout_is_refused(tmp_path: Path, bad: float) -> None:
    with pytest.raises(ValueError, match="positive number of seconds"):
        Cleanroom(tmp_path / "ws", timeout=bad)
    assert not (tmp_path / "ws").exists()
