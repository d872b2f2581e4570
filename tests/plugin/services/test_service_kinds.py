"""A third party's service kind, found through the ``pytest_cleanroom.services`` entry point:
the report header lists it, and its fixture gets one real server for the whole run."""

from __future__ import annotations

import os

import pytest

from pytest_cleanroom.owner import is_alive
from pytest_cleanroom.services.errors import ServiceConfigError
from pytest_cleanroom.services.kinds import kind

pytest_plugins = ("pytester",)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("runtime_dir")]

KIND = '''
"""An HTTP file server as a service kind: python -m http.server, one per run."""

import signal
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass

import pytest

from pytest_cleanroom.services.kinds import ServiceKind
from pytest_cleanroom.services.plugin import hub_of
from pytest_cleanroom.services.spawn import Account, ServerDir, clean_env, free_port, spawn


class FilesKind(ServiceKind):
    name = "files"
    starters = {"process": "files_kind:start"}
    install_hint = "install Python"

    def binary_detail(self, settings):
        return f"http.server of Python {sys.version_info[0]}"


@dataclass
class FilesServer:
    port: int
    pid: int

    def to_json(self):
        return asdict(self)


def start(settings, *, run_id, owner):
    sdir = ServerDir.create(
        service="files", runtime_dir=settings.runtime_dir, run_id=run_id, owner=owner,
        pidfile="", stop_signal=signal.SIGTERM,
    )
    with sdir.discarded_on_failure():
        port = free_port()
        argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
        proc = spawn(argv, log_path=sdir.path / "log", account=Account(), cwd=sdir.path,
                     env=clean_env())
        sdir.started(proc.pid)
        for _ in range(500):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.02)
        return sdir.started_server(FilesServer(port, proc.pid))


@pytest.fixture
def files(request):
    return FilesServer(**hub_of(request.config).server("files"))
'''

TESTS = """
import os
import urllib.request

import pytest


@pytest.mark.parametrize("n", range(4))
def test_the_runs_file_server(files, n):
    with urllib.request.urlopen(f"http://127.0.0.1:{files.port}/") as reply:
        assert reply.status == 200
    with open(os.environ["SEEN"], "a") as fh:
        fh.write(f"{files.pid}\\n")
"""


def test_an_entry_point_kind_serves_the_whole_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(files_kind=KIND, test_files=TESTS)
    dist = pytester.mkdir("files_kind-1.0.dist-info")
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: files-kind\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[pytest_cleanroom.services]\nfiles = files_kind:FilesKind\n"
        "[pytest11]\nfiles_kind = files_kind\n"
    )
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(pytester.path), os.environ.get("PYTHONPATH", "")])
    )
    seen = pytester.path / "seen"
    monkeypatch.setenv("SEEN", str(seen))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        ["cleanroom services: *; files=process (auto: http.server of Python 3)"]
    )
    pids = set(seen.read_text().split())
    assert len(pids) == 1  # one server for both workers
    # Stopped at the end of the run: gone, or a zombie that this process (a subreaper when the
    # engine has run here) has not collected yet.
    assert not is_alive(int(pids.pop()))


def test_an_unknown_kind_is_one_error_listing_the_known() -> None:
    with pytest.raises(ServiceConfigError, match="registered kinds are mysql, postgres, redis"):
        kind("memcached")
