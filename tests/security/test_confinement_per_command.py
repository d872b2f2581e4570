"""Each command gets exactly its own policy's confinement, never the command before's.

In a warm sandbox entered ahead, the command's process waits already confined as the LAST
command was (rlimits, keyring, capabilities, ``no_new_privs``, seccomp). Commands of one
cleanroom may each name a policy of their own, looser or tighter than the one before: here
every ordered pair of such policies follows each other on one backend, each command started
from a sandbox entered ahead for the one before, and each must show what the same command shows
when started cold under its own policy alone.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy
from pytest_cleanroom.backends import get_backend
from pytest_cleanroom.backends.bwrap import BwrapBackend
from pytest_cleanroom.backends.unshare import UnshareBackend
from pytest_cleanroom.policy_levels import MiB
from tests.security.backends import (
    require_backend,
    require_entering_ahead,
    wait_for_a_sandbox_entered_ahead,
)

pytestmark = pytest.mark.integration

COLD = {"bwrap": lambda: BwrapBackend(warm=False), "unshare": lambda: UnshareBackend(warm=False)}

# What confines the process that runs the command: its rlimits, identity and capabilities,
# no_new_privs and seccomp, whether process_vm_readv and a new user namespace are refused (only
# the strict filter / no nested namespaces refuse them), and whether it sees the host's network
# devices (their names come and go with other tests' containers).
PROBE = textwrap.dedent(
    """
    import ctypes, os, resource
    libc = ctypes.CDLL(None, use_errno=True)
    for name in ("NPROC", "NOFILE", "CPU", "FSIZE", "AS", "CORE", "MEMLOCK"):
        print(name, resource.getrlimit(getattr(resource, "RLIMIT_" + name)))
    keep = ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
            "NoNewPrivs", "Seccomp")
    for line in open("/proc/self/status"):
        if line.split(":")[0] in keep:
            print(line.strip())
    print("uid_map", open("/proc/self/uid_map").read().split())
    pid = os.getpid()  # process_vm_readv of nothing from itself: refused by the strict filter
    print("process_vm_readv", libc.syscall(310, pid, None, 0, None, 0, 0), ctypes.get_errno())
    print("net", "lo only" if set(os.listdir("/sys/class/net")) <= {"lo"} else "host's")
    child = os.fork()
    if child == 0:
        os._exit(0 if libc.unshare(0x10000000) == 0 else ctypes.get_errno())  # CLONE_NEWUSER
    print("userns", os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
    """
)

STANDARD = Policy.level("standard")
TIGHTER = STANDARD.replace(
    max_processes=64,
    max_open_files=64,
    max_file_size=1 * MiB,
    cpu_time_limit=30.0,
    memory_limit=256 * MiB,
    syscall_filter="strict",
)
#: The first three share their warm sandbox (they differ in limits and filter only); the others
#: need sandboxes of their own.
POLICIES = {
    "standard": STANDARD,
    "looser": STANDARD.replace(
        max_processes=4000, max_open_files=8000, max_file_size=None, memory_limit=None
    ),
    "tighter": TIGHTER,
    "no-nesting": TIGHTER.replace(nested_user_namespaces=False),
    "unprivileged": STANDARD.replace(
        unprivileged_user=True, network="isolated", syscall_filter="strict", max_open_files=100
    ),
}
#: Every ordered pair of distinct policies follows each other somewhere in this sequence.
ORDER = [
    key for first in POLICIES for other in POLICIES if other != first for key in (first, other)
]


def _cold(name: str, tmp_path: Path) -> dict[str, str]:
    """What the probe shows under each policy started cold, alone."""
    backend = COLD[name]()
    shown = {}
    try:
        for key, policy in POLICIES.items():
            with Cleanroom(tmp_path / f"cold-{key}", policy=policy, backend=backend) as room:
                result = room.run(["python3", "-c", PROBE])
                assert result.exit_code == 0, result.stderr
                shown[key] = result.stdout
    finally:
        backend.close()
    return shown


@pytest.mark.parametrize("name", sorted(COLD))
def test_each_command_is_confined_by_its_own_policy(tmp_path: Path, name: str) -> None:
    require_backend(name)
    require_entering_ahead()
    expected = _cold(name, tmp_path)
    assert len(set(expected.values())) == len(POLICIES), expected  # the probe tells them apart
    backend = get_backend(name, STANDARD)
    try:
        with Cleanroom(tmp_path / "ws", policy=STANDARD, backend=backend) as room:
            room.run(["true"]).assert_success()
            for key in ORDER:
                wait_for_a_sandbox_entered_ahead(backend)  # for the command before's policy
                result = room.run(["python3", "-c", PROBE], policy=POLICIES[key])
                assert result.exit_code == 0, result.stderr
                assert result.stdout == expected[key], key
    finally:
        backend.close()
