"""The backend protocol from outside: an instance passed in, and a third party's entry point."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Collection
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom
from pytest_cleanroom.backends.base import CommandSpec
from pytest_cleanroom.backends.bwrap import BwrapBackend
from pytest_cleanroom.errors import CleanroomError
from pytest_cleanroom.result import RunResult
from tests.integration.engine.conftest import require_backend

pytestmark = pytest.mark.integration


class RecordingBwrap(BwrapBackend):
    """bubblewrap under another name, recording the protocol calls the engine makes."""

    name = "recording"

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def stage_in(self, spec: CommandSpec) -> None:
        self.calls.append(f"stage_in {spec.argv[-1]}")

    def run(self, spec: CommandSpec) -> RunResult:
        self.calls.append(f"run {spec.argv[-1]}")
        return super().run(spec)

    def stage_out(self, spec: CommandSpec) -> None:
        self.calls.append(f"stage_out {spec.argv[-1]}")

    def cancel(self) -> None:
        self.calls.append("cancel")
        super().cancel()

    def cancel_commands(self, specs: Collection[CommandSpec]) -> None:
        self.calls.append(f"cancel_commands {' '.join(spec.argv[-1] for spec in specs)}")
        super().cancel_commands(specs)

    def close(self) -> None:
        self.calls.append("close")
        super().close()


def test_an_instance_runs_commands_under_its_own_name(tmp_path: Path) -> None:
    require_backend("bwrap")
    backend = RecordingBwrap()
    with Cleanroom(tmp_path / "ws", backend=backend, policy="locked") as room:
        result = room.run("echo inside > out.txt")
        result.assert_success()
        assert result.backend == room.backend_name == "recording"
        assert (tmp_path / "ws" / "out.txt").read_text() == "inside\n"
        assert room.can_bind_workspace
    assert backend.calls == [
        "stage_in echo inside > out.txt",
        "run echo inside > out.txt",
        "stage_out echo inside > out.txt",
    ]
    # The cleanroom did not close an instance it was given: it still serves another one.
    with Cleanroom(tmp_path / "ws2", backend=backend) as other:
        other.run("true").assert_success()


def test_cancel_goes_through_the_protocol(tmp_path: Path) -> None:
    require_backend("bwrap")
    backend = RecordingBwrap()
    room = Cleanroom(tmp_path / "ws", backend=backend)
    results: list[RunResult] = []
    worker = threading.Thread(target=lambda: results.append(room.run("sleep 300")))
    worker.start()
    # A run that ended on its own (an error, or not started) must fail the test, not spin here.
    while room.cancel() == 0 and worker.is_alive():
        worker.join(0.05)
    worker.join(30)
    room.close()
    assert results, "the command's run ended without a result (see the thread's exception above)"
    assert results[0].cancelled
    assert "cancel_commands sleep 300" in backend.calls
    assert "close" not in backend.calls


def test_cancel_stops_only_the_cancelled_cleanrooms_commands(tmp_path: Path) -> None:
    # One instance serving two cleanrooms (as the pytest plugin shares one per run): cancelling
    # one of them must not kill what the other runs.
    require_backend("bwrap")
    backend = RecordingBwrap()
    cancelled = Cleanroom(tmp_path / "a", backend=backend)
    other = Cleanroom(tmp_path / "b", backend=backend)
    results: dict[str, RunResult] = {}
    workers = [
        threading.Thread(target=lambda: results.update(a=cancelled.run("sleep 300"))),
        threading.Thread(target=lambda: results.update(b=other.run("sleep 2; echo survived"))),
    ]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 60
    while len(backend._live) < 2:  # both commands run before the cancel
        assert time.monotonic() < deadline, "the two commands did not start"
        workers[1].join(0.01)
    assert cancelled.cancel() == 1
    for worker in workers:
        worker.join(60)
    cancelled.close()
    other.close()
    assert results["a"].cancelled
    results["b"].assert_success().assert_stdout_contains("survived")
    assert not results["b"].cancelled


def test_a_backend_that_cannot_bind_is_refused_by_bind_workspace(tmp_path: Path) -> None:
    require_backend("bwrap")

    class NoBinding(BwrapBackend):
        name = "nobinding"
        can_bind_workspace = False

    with Cleanroom(tmp_path / "ws", backend=NoBinding()) as room:
        assert not room.can_bind_workspace
        with pytest.raises(CleanroomError, match="nobinding backend cannot bind"):
            room.bind_workspace(tmp_path).__enter__()


THIRD_PARTY = '''
"""A third party's backend: bubblewrap under the name 'acme'."""
from pytest_cleanroom.backends.bwrap import BwrapBackend


class AcmeBackend(BwrapBackend):
    name = "acme"
'''

USE_IT = """
import sys
from pytest_cleanroom import Cleanroom
from pytest_cleanroom.backends import backend_names

assert "acme" in backend_names(), backend_names()
with Cleanroom(sys.argv[1], backend="acme", policy="locked") as room:
    result = room.run("echo from acme")
print(result.backend, result.stdout.strip())
"""


def _install_third_party(site: Path) -> None:
    """A distribution on ``site`` that registers ``acme`` as any other distribution would."""
    (site / "acme_backend.py").write_text(THIRD_PARTY)
    info = site / "acme_backend-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-backend\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[pytest_cleanroom.backends]\nacme = acme_backend:AcmeBackend\n"
    )


def test_a_third_party_backend_is_found_through_its_entry_point(tmp_path: Path) -> None:
    require_backend("bwrap")
    site = tmp_path / "site"
    site.mkdir()
    _install_third_party(site)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-c", USE_IT, str(tmp_path / "ws")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "acme from acme"


def test_the_command_line_accepts_a_third_party_backend(tmp_path: Path) -> None:
    require_backend("bwrap")
    site = tmp_path / "site"
    site.mkdir()
    _install_third_party(site)
    (tmp_path / "test_it.py").write_text(
        textwrap.dedent(
            """
            def test_it(cleanroom):
                assert cleanroom.run("true").backend == "acme"
            """
        )
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site)}
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_it.py"]
    done = subprocess.run(
        [*argv, "--cleanroom-backend", "acme"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    refused = subprocess.run(
        [*argv, "--cleanroom-backend", "acmee"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode == 4
    assert "invalid choice: 'acmee'" in refused.stderr
    assert "'acme'" in refused.stderr
