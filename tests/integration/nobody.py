"""Asking as the 'nobody' user from a root test: a socket only root's group may open, and a
forked child that drops to 'nobody' and reports what it was told."""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def root_only_socket() -> Iterator[Path]:
    """A listening unix socket that is root's, mode 0660 (as /var/run/docker.sock is
    root:docker 0660), in a directory 'nobody' may enter."""
    directory = Path(tempfile.mkdtemp(prefix="crd-", dir="/tmp"))
    directory.chmod(0o755)
    path = directory / "docker.sock"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        server.listen()
        path.chmod(0o660)
        yield path
    finally:
        server.close()
        path.unlink(missing_ok=True)
        directory.rmdir()


def answer_as_nobody(ask: Callable[[], str]) -> str:
    """What ``ask`` returns (or raises) in a child running as 'nobody'; whatever ``ask`` needs
    must be imported already."""
    nobody = pwd.getpwnam("nobody")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(nobody.pw_gid, nobody.pw_gid, nobody.pw_gid)
            os.setresuid(nobody.pw_uid, nobody.pw_uid, nobody.pw_uid)
            try:
                answer = ask()
            except Exception as exc:
                answer = f"{type(exc).__name__}: {exc}"
            os.write(write, answer.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    return answer
