"""A third party's service kind, installed through the ``pytest_cleanroom.services`` entry point,
gets everything the built-in kinds get from the plugin, with no line of the plugin naming it: its
fixtures, one server for the run, a namespace of its own per test reset after it, its socket and
variables in a sandboxed command under ``strict``, and its log lines and health on failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_cleanroom.owner import is_alive
from pytest_cleanroom.services.errors import ServiceConfigError
from pytest_cleanroom.services.kinds import kind
from tests.conftest import require_binary

pytest_plugins = ("pytester",)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("runtime_dir")]

#: A tiny real key-value server (standard library only), run as a process on a unix socket; it
#: logs every command with the namespace it touched.
SERVER = """
import os, socketserver, sys

store = {}


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        for raw in self.rfile:
            words = raw.decode().split()
            if not words:
                continue
            command, args = words[0].upper(), words[1:]
            if command == "PING":
                reply = "PONG"
            elif command == "SET":
                store.setdefault(args[0], {})[args[1]] = args[2]
                reply = "OK"
            elif command == "GET":
                reply = store.get(args[0], {}).get(args[1], "(nil)")
            elif command == "KEYS":  # keys in every namespace starting with args[0]
                reply = str(sum(len(v) for k, v in store.items() if k.startswith(args[0])))
            elif command == "FLUSH":
                store.pop(args[0], None)
                reply = "OK"
            else:
                reply = "ERR unknown command"
            print(f"ns={args[0] if args else '-'} {command}", flush=True)
            self.wfile.write((reply + "\\n").encode())


os.umask(0o077)
socketserver.ThreadingUnixStreamServer(sys.argv[1], Handler).serve_forever()
"""

#: The kind: every operation of the protocol, on the shared bases (ServerDir, spawn, LogSource).
KIND = '''
"""A key-value server as a service kind: one per run, a namespace per test."""

import signal
import socket
import sys
import time
from dataclasses import asdict, dataclass
from itertools import count
from pathlib import Path
from pytest_cleanroom.services import Exposure, Isolation, ServiceKind
from pytest_cleanroom.services.model import LogSource
from pytest_cleanroom.services.spawn import Account, ServerDir, clean_env, spawn


def ask(path, line):
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(2)
        conn.connect(path)
        conn.sendall(line.encode() + b"\\n")
        return conn.makefile().readline().strip()


@dataclass
class KvServer:
    socket: str
    log: str
    pid: int

    def to_json(self):
        return asdict(self)


@dataclass
class Namespace:
    server: KvServer
    name: str

    def set(self, key, value):
        return ask(self.server.socket, f"SET {self.name} {key} {value}")

    def get(self, key):
        return ask(self.server.socket, f"GET {self.name} {key}")


class Namespaces(Isolation):
    def __init__(self, server, prefix):
        self.server, self.prefix, self.numbers = server, prefix, count(1)

    def isolate(self):
        return Namespace(self.server, f"{self.prefix}{next(self.numbers)}")

    def reset(self, handle):
        ask(self.server.socket, f"FLUSH {handle.name}")


def start(settings, *, run_id, owner):
    sdir = ServerDir.create(
        service="kv", runtime_dir=settings.runtime_dir, run_id=run_id, owner=owner,
        pidfile="", stop_signal=signal.SIGTERM,
    )
    with sdir.discarded_on_failure():
        (sdir.path / "sock").mkdir(mode=0o700)
        path = str(sdir.path / "sock" / "kv.sock")
        log = sdir.path / "kv.log"
        server_py = str(Path(__file__).with_name("server.py"))
        proc = spawn([sys.executable, server_py, path], log_path=log, account=Account(),
                     cwd=sdir.path, env=clean_env())
        sdir.started(proc.pid)
        deadline = time.monotonic() + settings.start_timeout
        while True:
            try:
                ask(path, "PING")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        return sdir.started_server(KvServer(path, str(log), proc.pid))


class KvKind(ServiceKind):
    name = "kv"
    starters = {"process": "kv_kind:start"}
    install_hint = "install Python 3"
    fixture_doc = "A key-value namespace of this test's own."
    server_doc = "The run's key-value server."

    def binary_detail(self, settings):
        return f"kv server on Python {sys.version_info[0]}"

    def server_from_json(self, data):
        return KvServer(**data)

    def isolation(self, server, hub):
        return Namespaces(server, hub.run.worker_prefix)

    def expose(self, handle):
        env = {"KV_SOCKET": handle.server.socket, "KV_NAMESPACE": handle.name}
        return Exposure(Path(handle.server.socket).parent, env)

    def health(self, server):
        try:
            ask(server.socket, "PING")
        except OSError as exc:
            return f"the kv server does not answer: {exc}"
        return None

    def log(self, handle):
        return LogSource(kind="file", path=handle.server.log)

    def own_log_lines(self, handle, text):
        return "\\n".join(line for line in text.splitlines() if f"ns={handle.name} " in line)
'''

TESTS = """
import os

import pytest

SANDBOXED = (
    "import os, socket\\n"
    "conn = socket.socket(socket.AF_UNIX)\\n"
    "conn.connect(os.environ['KV_SOCKET'])\\n"
    "conn.sendall(f\\"SET {os.environ['KV_NAMESPACE']} from sandbox\\\\n\\".encode())\\n"
    "print(conn.makefile().readline().strip())\\n"
)


def seen(kv):
    with open(os.environ["SEEN"], "a") as fh:
        fh.write(f"{kv.server.pid} {kv.name}\\n")


@pytest.mark.parametrize("n", range(4))
def test_a_namespace_of_its_own(kv, n):
    seen(kv)
    from kv_kind import ask

    worker_prefix = kv.name.rsplit("_", 1)[0] + "_"
    # This worker's earlier tests were reset: their namespaces are empty.
    assert ask(kv.server.socket, f"KEYS {worker_prefix}") == "0"
    assert kv.set("key", f"value{n}") == "OK"
    assert kv.get("key") == f"value{n}"


@pytest.mark.cleanroom("strict")
def test_reached_from_a_sandboxed_command_under_strict(cleanroom, kv):
    seen(kv)
    result = cleanroom.run(["python3", "-c", SANDBOXED])
    result.assert_success()
    assert result.stdout.strip() == "OK"
    assert kv.get("from") == "sandbox"
    assert result.policy_name == "strict"


@pytest.mark.cleanroom("strict", allowed_services=[])
def test_not_exposed_when_the_policy_does_not_allow_it(cleanroom, kv):
    seen(kv)
    listing = "echo ${KV_SOCKET:-unset}; ls " + os.path.dirname(kv.server.socket)
    result = cleanroom.run(["sh", "-c", listing])
    assert result.stdout.splitlines()[0] == "unset"
    assert result.exit_code != 0


def test_a_failure_reports_its_own_log_lines(kv):
    seen(kv)
    kv.set("mine", "1")
    assert kv.get("mine") == "2"
"""


def write_kind(directory: Path) -> str:
    """The kind as an installed distribution in ``directory`` (a package and its dist-info);
    the ``PYTHONPATH`` that finds it."""
    package = directory / "kv_kind"
    package.mkdir()
    (package / "__init__.py").write_text(KIND)
    (package / "server.py").write_text(SERVER)
    dist = directory / "kv_kind-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: kv-kind\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pytest_cleanroom.services]\nkv = kv_kind:KvKind\n")
    return os.pathsep.join([str(directory), os.environ.get("PYTHONPATH", "")])


def install_kind(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kind installed for pytester's runs."""
    monkeypatch.setenv("PYTHONPATH", write_kind(pytester.path))


@pytest.mark.parametrize("workers", ["0", "2"])
def test_an_entry_point_kind_gets_the_fixture_machinery(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    require_binary("bwrap", "apt-get install bubblewrap")
    install_kind(pytester, monkeypatch)
    pytester.makepyfile(test_kv=TESTS)
    seen = pytester.path / "seen"
    monkeypatch.setenv("SEEN", str(seen))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", workers, "-rf")
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(["cleanroom services: *; kv=process (auto: kv server on Python 3)"])
    rows = [line.split() for line in seen.read_text().splitlines()]
    pids = {pid for pid, _ in rows}
    assert len(pids) == 1  # one server for the whole run, every worker
    assert len({name for _, name in rows}) == len(rows)  # a namespace per test
    # The failing test's report has its own lines of the server's log, and nobody else's.
    failing = rows[-1][1] if workers == "0" else None  # the last test of the file
    section = result.stdout.str().split("cleanroom kv server log (since the test began)", 1)[1]
    lines = [line for line in section.split("short test summary", 1)[0].splitlines()]
    logged = [line.split() for line in lines if line.startswith("ns=")]
    assert {words[0] for words in logged} == {f"ns={failing or logged[0][0][3:]}"}
    assert [words[1] for words in logged] == ["SET", "GET"]
    # Stopped at the end of the run: gone, or a zombie not collected yet.
    assert not is_alive(int(pids.pop()))


HEALTH = """
import os
import signal


def test_the_server_dies(kv):
    os.kill(kv.server.pid, signal.SIGKILL)
    assert False
"""


def test_a_dead_server_is_said_in_the_failing_report(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_kind(pytester, monkeypatch)
    pytester.makepyfile(test_health=HEALTH)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, errors=1)  # the reset after the test cannot reach it either
    result.stdout.fnmatch_lines(
        ["*cleanroom kv server*", "the kv server does not answer: *Connection refused*"]
    )


def test_an_unknown_kind_is_one_error_listing_the_known() -> None:
    with pytest.raises(ServiceConfigError, match="registered kinds are mysql, postgres, redis"):
        kind("memcached")


def test_a_kind_missing_an_operation_is_one_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = pytester.mkpydir("half_kind")
    (package / "__init__.py").write_text(
        "from pytest_cleanroom.services import ServiceKind\n\n"
        "class HalfKind(ServiceKind):\n    name = 'half'\n\n"
        "    def binary_detail(self, settings):\n        return None\n"
    )
    dist = pytester.mkdir("half_kind-1.0.dist-info")
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: half-kind\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[pytest_cleanroom.services]\nhalf = half_kind:HalfKind\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*entry point half = half_kind:HalfKind*abstract*expose*isolation*server_from_json*"]
    )
