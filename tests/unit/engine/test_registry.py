"""The backend registry: names, aliases, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom
from pytest_cleanroom.backends import backend_names, get_backend, registry
from pytest_cleanroom.errors import BackendUnavailableError, PolicyError
from pytest_cleanroom.policy import Policy


def test_names() -> None:
    assert backend_names()[:5] == ("auto", "local", "bwrap", "unshare", "docker")


def test_unknown_backend_lists_the_registered_names() -> None:
    with pytest.raises(BackendUnavailableError) as caught:
        get_backend("dokcer")
    message = str(caught.value)
    assert "unknown cleanroom backend 'dokcer'" in message
    assert ", ".join(backend_names()) in message
    assert "pytest_cleanroom.backends" in message


def test_shipped_backends_are_declared_in_pyproject() -> None:
    """The fallback table mirrors the entry points this distribution declares."""
    import tomllib

    pyproject = Path(__file__).parents[3] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())["project"]["entry-points"][registry.GROUP]
    assert declared == registry.SHIPPED


def test_installed_metadata_declares_the_shipped_backends() -> None:
    from importlib.metadata import entry_points

    installed = {ep.name: ep.value for ep in entry_points(group=registry.GROUP)}
    assert installed.items() >= registry.SHIPPED.items(), (
        "reinstall the project (scripts/setup.sh) so its entry points are current"
    )


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


def test_pytest_start_reads_no_entry_points_and_imports_no_backend(tmp_path: Path) -> None:
    """The command-line choices are read when a name is checked, not while pytest starts."""
    import subprocess
    import sys

    script = (
        "import sys, pytest\n"
        "pytest.main(['--co', '-q', '-p', 'no:cacheprovider', sys.argv[1]])\n"
        "from pytest_cleanroom.backends import registry\n"
        "loaded = [m for m in ('docker', 'pytest_cleanroom.backends.docker') if m in sys.modules]\n"
        "print(registry._registered is None, loaded)\n"
    )
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "test_x.py")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=True,
    )  # fmt: skip
    assert done.stdout.splitlines()[-1] == "True []"
