"""Under ``strict`` and ``locked`` a command has no network at all, not even the host's loopback.

The marker asks for that one field, so these tests isolate the network under any command-line
policy (``standard`` lets commands use the host's network).
"""

from __future__ import annotations

import socket

import pytest

CONNECT = """\
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
except OSError as exc:
    print(f"refused: {exc}")
    sys.exit(42)
print("connected")
"""


@pytest.fixture
def host_listener():
    """A real TCP listener on the host's 127.0.0.1; yields its port."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        yield server.getsockname()[1]


@pytest.mark.cleanroom(network="isolated")
def test_the_host_loopback_is_unreachable(cleanroom, host_listener):
    result = cleanroom.run(["python3", "-c", CONNECT, str(host_listener)])
    result.assert_exit_code(42).assert_stdout_contains("refused")


@pytest.mark.cleanroom(network="isolated")
def test_only_a_private_loopback_exists(cleanroom):
    # A server and a client inside the same sandbox can still talk over its own loopback.
    script = (
        "import socket\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)\n"
        "c = socket.create_connection(s.getsockname(), timeout=5)\n"
        "print('private loopback ok')\n"
    )
    cleanroom.run(["python3", "-c", script]).assert_success().assert_stdout_contains("ok")
