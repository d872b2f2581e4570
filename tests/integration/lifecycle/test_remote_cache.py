"""The lifecycle's remote cache against the real ``turborepo-remote-cache`` server on 127.0.0.1.

Each "machine" is a separate copy of the same project in its own directory, with its own
``.ggen/``; they share nothing but the server.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import stat
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ggen_lifecycle.config import load_project
from ggen_lifecycle.remote_cache.signature import make_tag
from ggen_lifecycle.reporter import Reporter
from ggen_lifecycle.runner import Runner, RunOptions
from tests.conftest import require
from tests.unit.lifecycle.helpers import write_project

from .conftest import Ran, ggen
from .turbo_server import TurboServer, server_cli, start_server

pytestmark = pytest.mark.integration

KEY = "shared-team-key"
TEAM = "acme"
MAKE_TOML = """
[lifecycle.build]
command = '''python3 -c "
import os, pathlib, sys
src = pathlib.Path('src/input.txt').read_text()
pathlib.Path('dist/bin').mkdir(parents=True, exist_ok=True)
pathlib.Path('dist/out.txt').write_text(src.upper())
tool = pathlib.Path('dist/bin/tool')
tool.write_text('#!/bin/sh' + chr(10) + 'echo tool' + chr(10))
tool.chmod(0o755)
print('building', os.environ['GGEN_WORKSPACE'])
with open('../builds.log', 'a') as log: log.write(os.environ['GGEN_WORKSPACE'] + chr(10))
"'''
inputs = ["src/**"]
outputs = ["dist/**"]
"""
WORKSPACES = {"core": [], "app": ["core"]}
FILES = {"core/src/input.txt": "core input\n", "app/src/input.txt": "app input\n"}


@pytest.fixture(scope="module")
def cli() -> Path:
    found = server_cli()
    require(found is not None, "turborepo-remote-cache (scripts/setup.sh installs node, npm, it)")
    assert found is not None
    return found


@pytest.fixture(scope="module")
def server(cli: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TurboServer]:
    running = start_server(cli, tmp_path_factory.mktemp("turbo-server"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def tagless_server(cli: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TurboServer]:
    running = start_server(cli, tmp_path_factory.mktemp("tagless-server"), store_tags=False)
    yield running
    running.stop()


def machine(tmp_path: Path, name: str) -> Path:
    """A fresh copy of the project in its own directory (no .ggen yet)."""
    return write_project(tmp_path / name, MAKE_TOML, FILES, workspaces=WORKSPACES)


def remote_env(
    server: TurboServer, team: str, key: str | None = KEY, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TURBO_", "GGEN_REMOTE"))}
    env.update(TURBO_API=server.url, TURBO_TOKEN=server.token, TURBO_TEAM=team, **extra)
    if key is not None:
        env["TURBO_REMOTE_CACHE_SIGNATURE_KEY"] = key
    return env


def run_build(root: Path, env: dict[str, str], *args: str) -> dict:  # type: ignore[type-arg]
    done = ggen(root, "run", "build", "--json", *args, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    summary: dict = json.loads(done.stdout)  # type: ignore[type-arg]
    summary["stderr"] = done.stderr
    return summary


def caches(summary: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {t["id"]: t["cache"] for t in summary["tasks"]}


def builds(root: Path) -> list[str]:
    path = root / "builds.log"
    return path.read_text().split() if path.exists() else []


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    out = {}
    for path in sorted(root.rglob("dist/**/*")):
        if path.is_file():
            out[path.relative_to(root).as_posix()] = (path.read_bytes(), path.stat().st_mode)
    return out


def test_second_machine_gets_remote_hits_for_everything_the_first_built(
    server: TurboServer, tmp_path: Path
) -> None:
    env = remote_env(server, "two-machines")
    first, second = machine(tmp_path, "first"), machine(tmp_path, "second")
    built = run_build(first, env)
    assert set(caches(built).values()) == {"miss"}
    assert builds(first) == ["core", "app"]
    assert sorted(p.name for p in (server.storage / "two-machines").iterdir()) == sorted(
        [t["cache_key"] for t in built["tasks"]] + [t["cache_key"] + ".tag" for t in built["tasks"]]
    )

    done = ggen(second, "run", "build", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert builds(second) == []  # nothing ran on the second machine
    assert "core:build | building core" in done.stdout  # the log replayed as on a local hit
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith(("core", "app"))]
    assert {row[0]: " ".join(row[3:]) for row in rows if len(row) >= 4} == {
        "core:build": "remote hit",
        "app:build": "remote hit",
    }
    assert tree(second) == tree(first)
    assert tree(second)["app/dist/bin/tool"][1] & stat.S_IXUSR

    again = run_build(second, env)  # now held locally
    assert set(caches(again).values()) == {"hit"}


def test_a_wrong_signature_key_refuses_every_artifact(server: TurboServer, tmp_path: Path) -> None:
    first, third = machine(tmp_path, "first"), machine(tmp_path, "third")
    run_build(first, remote_env(server, "wrong-key"))
    summary = run_build(third, remote_env(server, "wrong-key", key="not-the-team-key"))
    assert set(caches(summary).values()) == {"miss"}
    assert builds(third) == ["core", "app"]
    refused = [w for w in summary["warnings"] if "refused" in w]
    assert len(refused) == 2
    assert all("signature does not verify" in w for w in refused)


def test_an_unsigned_artifact_is_refused_when_a_key_is_set(
    tagless_server: TurboServer, tmp_path: Path
) -> None:
    first, second, keyless = (machine(tmp_path, n) for n in ("first", "second", "keyless"))
    run_build(first, remote_env(tagless_server, "unsigned"))
    summary = run_build(second, remote_env(tagless_server, "unsigned"))
    assert builds(second) == ["core", "app"]
    assert len(summary["warnings"]) == 2
    assert all("unsigned: the server sent no x-artifact-tag" in w for w in summary["warnings"])
    # the artifacts are there: a machine that does not check signatures takes them
    trusting = run_build(keyless, remote_env(tagless_server, "unsigned", key=None))
    assert set(caches(trusting).values()) == {"remote hit"}


def test_a_tampered_artifact_is_refused_and_the_task_runs(
    server: TurboServer, tmp_path: Path
) -> None:
    first, second = machine(tmp_path, "first"), machine(tmp_path, "second")
    built = run_build(first, remote_env(server, "tampered"))
    core_key = built["tasks"][0]["cache_key"]
    stored = server.artifact_path("tampered", core_key)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))
    summary = run_build(second, remote_env(server, "tampered"))
    assert caches(summary) == {"build:core": "miss", "build:app": "remote hit"}
    assert builds(second) == ["core"]
    assert [w for w in summary["warnings"] if "refused" in w] == [
        f"remote cache artifact {core_key[:12]} refused (its signature does not verify with"
        " TURBO_REMOTE_CACHE_SIGNATURE_KEY); running the task"
    ]


def hostile_artifact(key: str, kind: str) -> bytes:
    """A zstd tar that a malicious writer could put on the server for ``key``."""
    import zstandard

    payload = b"owned\n"
    manifest: dict = {  # type: ignore[type-arg]
        "kind": "ggen-lifecycle-artifact",
        "format": 1,
        "key": key,
        "outputs": {},
        "log": {
            "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "size": 0,
        },
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:

        def add(member: tarfile.TarInfo, data: bytes = b"") -> None:
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))

        # "undeclared": a plain file inside the project, but not one the phase's outputs name
        names = {"traversal": "../../escaped.txt", "undeclared": "src/input.txt"}
        name = names.get(kind, "dist/x")
        member = tarfile.TarInfo(name)
        if kind == "symlink":
            member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
        elif kind == "setuid":
            member.mode = 0o4755
        entry = {"sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload)}
        manifest["outputs"][name] = {**entry, "mode": 0o644}
        manifest_bytes = json.dumps(manifest).encode()
        add(tarfile.TarInfo(".ggen/artifact.json"), manifest_bytes)
        add(tarfile.TarInfo(".ggen/log"))
        add(member, b"" if kind == "symlink" else payload)
    return zstandard.ZstdCompressor().compress(raw.getvalue())


def put(server: TurboServer, team: str, key: str, body: bytes, tag: str | None) -> None:
    import http.client

    connection = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=10)
    headers = {
        "Authorization": f"Bearer {server.token}",
        "Content-Type": "application/octet-stream",
    }
    if tag:
        headers["x-artifact-tag"] = tag
    connection.request("PUT", f"/v8/artifacts/{key}?slug={team}", body=body, headers=headers)
    assert connection.getresponse().status == 200
    connection.close()


@pytest.mark.parametrize(
    ("kind", "signed"),
    [("traversal", True), ("undeclared", True), ("symlink", False)],
    ids=["traversal-signed-with-the-key", "undeclared-signed-with-the-key", "symlink-no-key"],
)
def test_a_hostile_artifact_is_refused_and_writes_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str, signed: bool
) -> None:
    # Even an artifact signed with the team's key (a leaked key, a compromised machine of the
    # team) is unpacked only under the checks: nothing lands outside the project. Unsigned ones
    # come from the server that keeps no tags, to a machine that checks none.
    server: TurboServer = request.getfixturevalue("server" if signed else "tagless_server")
    target = machine(tmp_path / "nested" / "deeper", "victim")
    planned = ggen(target, "run", "build", "--dry-run", "--json")
    key = json.loads(planned.stdout)["plan"][0]["cache_key"]
    team = f"hostile-{kind}-{signed}"
    body = hostile_artifact(key, kind)
    put(server, team, key, body, make_tag(KEY.encode(), key, "", body) if signed else None)
    summary = run_build(target, remote_env(server, team, key=KEY if signed else None))
    assert caches(summary)["build:core"] == "miss"
    assert builds(target) == ["core", "app"]
    assert any("refused" in w or "does not declare" in w for w in summary["warnings"]), summary[
        "warnings"
    ]
    assert (target / "core" / "src" / "input.txt").read_text() == "core input\n"
    assert not (tmp_path / "nested" / "escaped.txt").exists()
    assert not (target / "core" / "dist" / "x").exists()
    assert not list((target / ".ggen" / "cache").glob(".remote-*"))


def test_make_toml_names_the_server_and_the_environment_gives_the_secrets(
    server: TurboServer, tmp_path: Path
) -> None:
    table = f'''
[cache.remote]
url = "{server.url}"
team = "from-make-toml"
signature = true
'''
    first, second = (machine(tmp_path, name) for name in ("first", "second"))
    for root in (first, second):
        (root / "make.toml").write_text((root / "make.toml").read_text() + table)
    secrets = {k: v for k, v in os.environ.items() if not k.startswith(("TURBO_", "GGEN_"))}
    secrets.update(TURBO_TOKEN=server.token, TURBO_REMOTE_CACHE_SIGNATURE_KEY=KEY)
    run_build(first, secrets)
    assert (server.storage / "from-make-toml").is_dir()
    assert set(caches(run_build(second, secrets)).values()) == {"remote hit"}
    unsigned = run_build(second, {k: v for k, v in secrets.items() if "SIGNATURE" not in k})
    assert any("signature = true but" in w for w in unsigned["warnings"])


def in_process(root: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Ran:
    for name in [k for k in os.environ if k.startswith(("TURBO_", "GGEN_REMOTE"))]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith(("TURBO_", "GGEN_REMOTE")):
            monkeypatch.setenv(name, value)
    stream = io.BytesIO()
    summary = Runner(load_project(root), RunOptions(), Reporter(stream)).run(["build"])
    return Ran(summary, stream.getvalue())


def test_read_only_mode_reads_but_never_uploads(
    server: TurboServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = remote_env(server, "read-only", TURBO_REMOTE_CACHE_READ_ONLY="1")
    ran = in_process(machine(tmp_path, "pr"), monkeypatch, reader)
    assert ran.summary.status == "success"
    assert not (server.storage / "read-only").exists()
    run_build(machine(tmp_path, "main"), remote_env(server, "read-only"))
    pulled = in_process(machine(tmp_path, "pr2"), monkeypatch, reader)
    assert {r.cache for r in pulled.summary.results} == {"remote hit"}


def test_mode_off_never_contacts_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as listener:  # a port that would hang anyone who connected
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        env = {"TURBO_API": url, "TURBO_TEAM": "t", "GGEN_REMOTE_CACHE": "off"}
        ran = in_process(machine(tmp_path, "off"), monkeypatch, env)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert ran.summary.status == "success"
    assert ran.summary.warnings == []


class Garbage(BaseHTTPRequestHandler):
    """Answers every artifact request with 200 and bytes that are no artifact."""

    def do_GET(self) -> None:
        body = os.urandom(4096)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def garbage_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers (a hung server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # nobody listens once closed


@pytest.mark.parametrize(
    ("server_kind", "reason"),
    [
        ("closed_port", "Connection refused"),
        ("silent_server", "timed out"),
        ("garbage_server", "PUT answered HTTP 500"),
    ],
)
def test_a_broken_server_never_fails_the_run(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    server_kind: str,
    reason: str,
) -> None:
    url = request.getfixturevalue(server_kind)
    env = {"TURBO_API": url, "TURBO_TEAM": "t", "TURBO_REMOTE_CACHE_TIMEOUT": "1"}
    ran = in_process(machine(tmp_path, server_kind), monkeypatch, env)
    assert ran.summary.status == "success"
    assert builds(tmp_path / server_kind) == ["core", "app"]
    outage = [w for w in ran.summary.warnings if "not used for the rest of this run" in w]
    assert len(outage) == 1, ran.summary.warnings
    assert reason in outage[0]
    if server_kind == "garbage_server":  # each garbage download was refused on its own first
        refused = [w for w in ran.summary.warnings if "refused (not a zstd" in w]
        assert len(refused) == 1
