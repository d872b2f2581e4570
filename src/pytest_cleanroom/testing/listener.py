"""A real TCP listener on the host's 127.0.0.1, for tests that a sandbox cannot reach it."""

from __future__ import annotations

import socket
import threading
import uuid


class Listener:
    """A real TCP server on the host's 127.0.0.1 that greets and counts its clients."""

    def __init__(self) -> None:
        self.banner = f"host-secret-{uuid.uuid4().hex}"
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                conn.sendall(self.banner.encode())

    def close(self) -> None:
        self.sock.close()
