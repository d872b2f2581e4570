"""``ggen market serve`` against slow clients (slowloris): real sockets to a real server process.

A client that trickles its request line or headers, or connects and says nothing, is cut after
the documented timeout (``--read-timeout``: the whole line and headers, and each wait), and
while it trickles every other client is served.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .served import Served, serve

pytestmark = pytest.mark.integration

#: Seconds between two trickled bytes: well within each read's wait, so only the deadline cuts.
PACE = 0.2
#: The server's --read-timeout (seconds).
READ_TIMEOUT = 3
#: How long a test waits for the server to cut a connection before calling it held.
HELD = 30.0


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Served]:
    root = tmp_path / "registry"
    root.mkdir()
    with serve(root, "--read-timeout", str(READ_TIMEOUT), token=None) as served:
        yield served


def connect(registry: Served) -> socket.socket:
    host, port = registry.url.split("//")[1].rstrip("/").split(":")
    return socket.create_connection((host, int(port)), timeout=HELD)


@contextlib.contextmanager
def trickling(conn: socket.socket, head: bytes, slow: bytes) -> Iterator[None]:
    """Send ``head`` at once, then ``slow`` a byte every :data:`PACE` seconds (in a thread)
    until the server cuts the connection or the block ends."""
    conn.sendall(head)
    stop = threading.Event()

    def trickle() -> None:
        for byte in slow:
            if stop.wait(PACE):
                return
            try:
                conn.send(bytes([byte]))
            except OSError:
                return  # the server cut the connection

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        yield
    finally:
        stop.set()
        sender.join()


def answer_of(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes (a timeout: the server held it)."""
    received = b""
    while True:
        try:
            chunk = conn.recv(65536)
        except ConnectionResetError:
            return received
        except TimeoutError:
            raise AssertionError(f"the server held a slow connection for {HELD:g} s") from None
        if not chunk:
            return received
        received += chunk


def status_of(answer: bytes) -> str:
    return answer.split(b"\r\n", 1)[0].decode("latin-1")


def served_index(registry: Served) -> None:
    answer = httpx.get(registry.url + "index.json", timeout=10)
    assert answer.status_code == 200, answer.text


def test_trickled_request_lines_are_cut_with_408_and_others_are_served(registry: Served) -> None:
    slow_line = b"/index.json?" + b"a" * 400 + b" HTTP/1.1\r\n"  # 80 s at this pace
    conns = []
    with contextlib.ExitStack() as stack:
        for _ in range(20):
            conns.append(stack.enter_context(connect(registry)))
            stack.enter_context(trickling(conns[-1], b"GET ", slow_line))
        served_index(registry)  # while twenty connections trickle
        answers = [answer_of(conn) for conn in conns]
    assert {status_of(a) for a in answers} == {"HTTP/1.0 408 Request Timeout"}, answers[0][:300]
    assert f"the request line and headers took longer than {READ_TIMEOUT} s".encode() in answers[0]
    served_index(registry)
    assert f"took longer than {READ_TIMEOUT} s" in registry.log()


def test_trickled_headers_are_cut_with_408_not_answered_as_a_request(registry: Served) -> None:
    with connect(registry) as conn:
        head = b"GET /index.json HTTP/1.1\r\nHost: x\r\n"
        with trickling(conn, head, b"X-Slow: " + b"b" * 400 + b"\r\n\r\n"):
            served_index(registry)
            answer = answer_of(conn)
    # Not the index: what arrived by the deadline is not a whole request.
    assert status_of(answer) == "HTTP/1.0 408 Request Timeout", answer[:300]
    served_index(registry)


def test_a_silent_connection_is_closed_after_the_read_timeout(registry: Served) -> None:
    with connect(registry) as silent, connect(registry) as half:
        half.sendall(b"GET /index.json HTTP/1.1\r\nHost: x\r\n")  # then nothing
        served_index(registry)
        assert answer_of(silent) == b""  # nothing asked, nothing answered: closed
        assert status_of(answer_of(half)) in ("", "HTTP/1.0 408 Request Timeout")
