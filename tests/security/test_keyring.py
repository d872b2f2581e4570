"""Item 1 of the hardening: a command cannot reach the engine's kernel keyring, at any level.

The engine runs in a session keyring holding a key (as under a CI service or an ssh login with
``pam_keyinit``); the probe, inside the sandbox, tries to list, search, read and link it, and to
plant a key of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pytest_cleanroom.policy import LEVELS
from pytest_cleanroom.testing import probes
from tests.security import ns_probes

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# The engine's side, in a process of its own: join a session keyring, put a key in it, then run
# the probe in a cleanroom and print its exit code and output.
ENGINE = """
import ctypes, sys
from pytest_cleanroom import Cleanroom
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
assert libc.syscall(ctypes.c_long(250), ctypes.c_long(1), None) > 0, "join a session keyring"
secret = sys.argv[4].encode()
key = libc.syscall(ctypes.c_long(248), b"user", b"cleanroom-probe-key", secret,
                   ctypes.c_long(len(secret)), ctypes.c_long(-3))
assert key > 0, "add the key"
with Cleanroom(sys.argv[1], policy=sys.argv[2], backend=sys.argv[3]) as room:
    result = room.run(["python3", "-c", sys.argv[5], sys.argv[4]])
print(result.exit_code)
print(result.stdout + result.stderr)
"""


@pytest.mark.parametrize("level", LEVELS)
def test_the_engines_session_keyring_is_unreachable(
    tmp_path: Path, backend: str, level: str
) -> None:
    secret = f"key-{uuid.uuid4().hex}"
    done = subprocess.run(
        [sys.executable, "-c", ENGINE, str(tmp_path), level, backend, secret, ns_probes.KEYRING],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert done.returncode == 0, done.stderr
    code, _, output = done.stdout.partition("\n")
    if int(code) == probes.ESCAPED:
        pytest.fail(f"keyring escape on {backend} under {level}: {output}")
    assert int(code) == probes.BLOCKED, f"the probe broke: {output}"
