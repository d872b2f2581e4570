"""Backends refuse policies they cannot honour, and ``auto``/``local`` move on to the next."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy
from pytest_cleanroom.backends import get_backend
from pytest_cleanroom.errors import BackendUnavailableError
from tests.integration.engine.conftest import require_backend

pytestmark = pytest.mark.integration

# Stands in for a bubblewrap older than 0.8, which has no --disable-userns: we have no such
# binary here, so a wrapper around the real one refuses that option the way it would.
OLD_BWRAP = """#!/bin/sh
for a; do
  if [ "$a" = --disable-userns ]; then echo "bwrap: Unknown option $a" >&2; exit 1; fi
done
exec REAL "$@"
"""


@pytest.fixture
def old_bwrap_first_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    require_backend("bwrap")
    import shutil

    real = shutil.which("bwrap")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "bwrap"
    fake.write_text(OLD_BWRAP.replace("REAL", str(real)))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return fake


def test_bwrap_without_disable_userns_refuses_strict_policies(
    old_bwrap_first_on_path: Path, tmp_path: Path
) -> None:
    get_backend("bwrap", Policy.level("standard"))  # fine: standard allows user namespaces
    with pytest.raises(BackendUnavailableError, match="cannot forbid nested user namespaces"):
        get_backend("bwrap", Policy.level("locked"))
    with pytest.raises(BackendUnavailableError, match="cannot forbid nested user namespaces"):
        Cleanroom(tmp_path / "ws", policy="locked", backend="bwrap")


def test_local_and_auto_fall_back_to_unshare(old_bwrap_first_on_path: Path, tmp_path: Path) -> None:
    require_backend("unshare")
    assert get_backend("local", Policy.level("standard")).name == "bwrap"
    assert get_backend("local", Policy.level("locked")).name == "unshare"
    with Cleanroom(tmp_path / "ws", policy="locked", backend="auto") as room:
        assert room.backend_name == "unshare"
        room.run(["unshare", "--user", "true"]).assert_failure()


def test_unshare_is_the_local_fallback_without_bwrap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_backend("unshare")
    import shutil

    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("unshare", "setpriv"):
        found = shutil.which(tool)
        assert found is not None
        (bindir / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(bindir))  # no bwrap anywhere
    with Cleanroom(tmp_path / "ws", backend="local") as room:
        assert room.backend_name == "unshare"
        room.run(["/bin/echo", "ok"]).assert_success().assert_stdout_contains("ok")
