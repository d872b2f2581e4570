"""Under ``strict`` and ``locked`` the sandbox shows an allow-list of the host's filesystem:
root-only files outside it (``/var/backups``, ``/opt``, ``/var/log``, ``/var/tmp``) and those in
``/etc`` that other users cannot read (keys, server configurations) are out of reach, and so is
a socket in ``/var/tmp``."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy
from pytest_cleanroom.backends.namespace.filesystem import etc_secrets
from pytest_cleanroom.policy import LEVELS
from pytest_cleanroom.testing import probes
from tests.conftest import require
from tests.security import ns_probes
from tests.security.backends import require_backend

pytestmark = pytest.mark.integration

ALLOW_LIST = [level for level in LEVELS if Policy.level(level).filesystem_view == "allow-list"]
# /etc is not planted in: a file that comes and goes there races with the plans of sandboxes
# starting meanwhile; the root-only files /etc already holds are probed instead.
DIRECTORIES = ("/var/backups", "/opt", "/var/log", "/var/tmp")


@pytest.fixture
def planted() -> Iterator[tuple[str, list[str], list[str]]]:
    """A 0600 root file holding a secret in each directory, and a listening socket in /var/tmp."""
    require(os.geteuid() == 0, "root, to plant root-only files in system directories")
    secret = uuid.uuid4().hex
    files = []
    for directory in DIRECTORIES:
        if not os.path.isdir(directory):
            continue
        path = os.path.join(directory, f"cleanroom-probe-{secret[:8]}.key")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret)
        files.append(path)
    server = socket.socket(socket.AF_UNIX)
    sock = f"/var/tmp/cleanroom-probe-{secret[:8]}.sock"
    server.bind(sock)
    server.listen()
    try:
        yield secret, files, [sock]
    finally:
        server.close()
        for path in [*files, sock]:
            os.unlink(path)


@pytest.mark.parametrize("level", ALLOW_LIST)
@pytest.mark.parametrize("backend", ["bwrap", "unshare"])
def test_root_only_files_and_sockets_are_out_of_reach(
    tmp_path: Path, backend: str, level: str, planted: tuple[str, list[str], list[str]]
) -> None:
    require_backend(backend)
    secret, files, sockets = planted
    etc = [path for path in etc_secrets() if os.path.isfile(path)]
    require(bool(etc), "a root-only file in /etc (the shadow file at least)")
    argv = ["python3", "-c", ns_probes.ROOT_ONLY_FILES, secret, *files, "--", *etc, "--", *sockets]
    with Cleanroom(tmp_path / "ws", policy=level, backend=backend) as room:
        result = room.run(argv)
        if result.exit_code == probes.ESCAPED:
            pytest.fail(f"escape on {backend} under {level}: {result.stdout}")
        assert result.exit_code == probes.BLOCKED, result.describe()
        # The same probe finds them through a deny-list view, as the invoking user (root).
        wide = Policy.level(level).replace(filesystem_view="deny-list", unprivileged_user=False)
        assert room.run(argv, policy=wide).exit_code == probes.ESCAPED
        # What programs need is still there.
        room.run(["python3", "-c", "import json, ssl, sqlite3"]).assert_success()
