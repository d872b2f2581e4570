"""A hostile HTTP registry on 127.0.0.1: a trickling server, a huge or compressed-bomb index, a
non-ASCII ETag and a deeply nested index each end in one clear error (or the cached index), within
the transfer deadline and the size caps, and nothing expanded is written to the cache."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import ggen, write_gpack

Behaviour = Callable[[http.server.BaseHTTPRequestHandler], None]


@dataclass
class Hostile:
    """A server whose answer to every GET is ``behaviour`` (a test swaps it while it runs)."""

    url: str
    behaviour: Behaviour
    stop: threading.Event = field(default_factory=threading.Event)
    sent: list[int] = field(default_factory=list)


@pytest.fixture
def hostile(env: dict[str, str]) -> Iterator[Hostile]:
    state: list[Hostile] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            with contextlib.suppress(OSError):
                state[0].behaviour(self)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.append(Hostile(f"http://127.0.0.1:{server.server_address[1]}/", _not_found))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state[0]
    state[0].stop.set()
    server.shutdown()
    server.server_close()


def _not_found(handler: http.server.BaseHTTPRequestHandler) -> None:
    handler.send_response(404)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def _serve(body: bytes, **headers: str) -> Behaviour:
    def behaviour(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.end_headers()
        handler.wfile.write(body)

    return behaviour


def _good_index(tmp_path: Path) -> bytes:
    src = tmp_path / "src"
    write_gpack(src, "io.web.alpha", "1.0.0")
    out = tmp_path / "built"
    result = ggen("market", "index", str(src), "--output", str(out))
    assert result.exit_code == 0, result.output
    return (out / "index.json").read_bytes()


def _search(hostile: Hostile, project: Path) -> tuple[int, str, str]:
    result = ggen("market", "search", "alpha", "--registry", hostile.url, "--project",
                  str(project), "--json")  # fmt: skip
    return result.exit_code, result.stdout, result.stderr


def _cached_indexes(env: dict[str, str]) -> list[Path]:
    return sorted(Path(env["GGEN_CACHE_DIR"]).glob("http/*/index.json"))


def _trickle(hostile: Hostile) -> Behaviour:
    """Headers at once, then one byte of the body every 2 s."""

    def behaviour(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        for _ in range(1000):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            if hostile.stop.wait(2):
                return

    return behaviour


def test_a_trickling_index_ends_at_the_deadline(
    hostile: Hostile, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GGEN_HTTP_DEADLINE", "3")
    hostile.behaviour = _trickle(hostile)
    started = time.monotonic()
    code, _, stderr = _search(hostile, project)
    elapsed = time.monotonic() - started
    assert code == 1
    assert "not complete within 3 s" in stderr
    assert "GGEN_HTTP_DEADLINE" in stderr
    assert elapsed < 60  # ended by the deadline, not by the 1000 bytes at 2 s each


def test_a_trickling_index_falls_back_to_the_good_cached_one(
    hostile: Hostile, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile.behaviour = _serve(_good_index(tmp_path))
    assert _search(hostile, project)[0] == 0
    monkeypatch.setenv("GGEN_HTTP_DEADLINE", "3")
    hostile.behaviour = _trickle(hostile)
    code, stdout, stderr = _search(hostile, project)
    assert code == 0, stderr
    assert [r["id"] for r in json.loads(stdout)["results"]] == ["io.web.alpha"]
    assert "not complete within 3 s" in stderr
    assert "using the index cached at" in stderr


def test_a_huge_declared_index_is_refused_before_its_body(hostile: Hostile, project: Path) -> None:
    def behaviour(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(800 * 1024 * 1024))
        handler.end_headers()
        sent = 0
        with contextlib.suppress(OSError):
            while sent < 800 * 1024 * 1024 and not hostile.stop.is_set():
                handler.wfile.write(b"\0" * (1 << 20))
                sent += 1 << 20
        hostile.sent.append(sent)

    hostile.behaviour = behaviour
    code, _, stderr = _search(hostile, project)
    assert code == 1
    assert f"declares {800 * 1024 * 1024} bytes" in stderr
    assert "GGEN_MAX_INDEX_BYTES" in stderr


def test_an_endless_undeclared_index_stops_at_the_cap(
    hostile: Hostile, project: Path, env: dict[str, str]
) -> None:
    """800 MiB without a Content-Length: the client stops reading at the 64 MiB cap."""

    def behaviour(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        sent = 0
        try:
            while sent < 800 * 1024 * 1024 and not hostile.stop.is_set():
                handler.wfile.write(b"[" * (1 << 20))
                sent += 1 << 20
        finally:
            hostile.sent.append(sent)

    hostile.behaviour = behaviour
    code, _, stderr = _search(hostile, project)
    assert code == 1
    assert "larger than the limit of 67108864 bytes (sent more)" in stderr
    for _ in range(100):  # the server notices the closed connection on its next write
        if hostile.sent:
            break
        time.sleep(0.05)
    assert hostile.sent
    assert hostile.sent[0] < 800 * 1024 * 1024
    assert _cached_indexes(env) == []


def _gzip_bomb(size: int) -> bytes:
    """``size`` bytes of "0" as a multi-member gzip stream (one 16 MiB member, repeated)."""
    compress = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = compress.compress(b"0" * (16 << 20)) + compress.flush()
    return member * (size >> 24)


def test_a_gzip_bomb_index_is_refused_and_never_cached(
    hostile: Hostile, project: Path, env: dict[str, str]
) -> None:
    bomb = _gzip_bomb(1 << 30)  # 1 GiB of "0" in about 1 MB
    assert len(bomb) < 2 * 1024 * 1024
    hostile.behaviour = _serve(bomb, Content_Encoding="gzip")
    code, _, stderr = _search(hostile, project)
    assert code == 1
    assert "larger than the limit of 67108864 bytes (sent more)" in stderr
    assert _cached_indexes(env) == []


def test_a_small_gzip_index_is_decompressed(
    hostile: Hostile, project: Path, tmp_path: Path
) -> None:
    compress = zlib.compressobj(6, zlib.DEFLATED, 31)
    body = compress.compress(_good_index(tmp_path)) + compress.flush()
    hostile.behaviour = _serve(body, Content_Encoding="gzip")
    code, stdout, stderr = _search(hostile, project)
    assert code == 0, stderr
    assert [r["id"] for r in json.loads(stdout)["results"]] == ["io.web.alpha"]


def test_a_non_ascii_etag_does_not_break_later_commands(
    hostile: Hostile, project: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    hostile.behaviour = _serve(_good_index(tmp_path), ETag='"caf\u00e9"')
    for _ in range(2):
        code, stdout, stderr = _search(hostile, project)
        assert code == 0, stderr
        assert [r["id"] for r in json.loads(stdout)["results"]] == ["io.web.alpha"]
    # A cache written by an earlier version with such an ETag is read without it.
    (meta,) = Path(env["GGEN_CACHE_DIR"]).glob("http/*/meta.json")
    meta.write_text(json.dumps({"etag": '"caf\u00e9"', "url": hostile.url}), encoding="utf-8")
    code, _, stderr = _search(hostile, project)
    assert code == 0, stderr


def test_a_deeply_nested_index_is_an_error_or_the_cached_index(
    hostile: Hostile, project: Path, tmp_path: Path
) -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    hostile.behaviour = _serve(deep)
    code, _, stderr = _search(hostile, project)
    assert code == 1
    assert "nested too deeply" in stderr
    assert "Traceback" not in stderr
    hostile.behaviour = _serve(_good_index(tmp_path))
    assert _search(hostile, project)[0] == 0
    hostile.behaviour = _serve(deep)
    code, stdout, stderr = _search(hostile, project)
    assert code == 0, stderr
    assert "nested too deeply" in stderr
    assert [r["id"] for r in json.loads(stdout)["results"]] == ["io.web.alpha"]


def test_an_archive_that_trickles_or_explodes_installs_nothing(
    hostile: Hostile, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = _good_index(tmp_path)
    bomb = _gzip_bomb(512 << 20)
    ok = _serve(index)
    lock_before = sorted(p.name for p in project.iterdir())

    def archive(kind: str) -> Behaviour:
        def behaviour(handler: http.server.BaseHTTPRequestHandler) -> None:
            if handler.path.endswith("index.json"):
                ok(handler)
            elif kind == "bomb":
                _serve(bomb, Content_Encoding="gzip")(handler)
            else:
                _trickle(hostile)(handler)

        return behaviour

    monkeypatch.setenv("GGEN_HTTP_DEADLINE", "3")
    monkeypatch.setenv("GGEN_MAX_ARCHIVE_BYTES", str(16 << 20))
    for kind, message in (("bomb", "larger than the limit"), ("trickle", "within 3 s")):
        hostile.behaviour = archive(kind)
        result = ggen("market", "add", "io.web.alpha", "--registry", hostile.url, "--project",
                      str(project))  # fmt: skip
        assert result.exit_code == 1, result.output
        assert message in result.stderr
        assert sorted(p.name for p in project.iterdir() if p.name != ".ggen") == lock_before
        assert not list(project.glob(".ggen/packages/*"))
        assert not list(project.glob(".ggen/.staging-*"))
