"""The seccomp program, run by a small classic-BPF interpreter on made-up system calls.

The real filter is attacked in tests/security/test_seccomp.py; these cover what this machine
cannot run there: i386 and x32 calls, and architectures without a table.
"""

from __future__ import annotations

import errno
import struct

import pytest

from pytest_cleanroom.backends import _seccomp

ALLOW = 0x7FFF0000
EPERM = 0x00050000 | errno.EPERM
ENOSYS = 0x00050000 | errno.ENOSYS
X86_64, I386, AARCH64 = 0xC000003E, 0x40000003, 0xC00000B7


def run(
    program: bytes, nr: int, arch: int = X86_64, arg0: int = 0, args: tuple[int, ...] = ()
) -> int:
    """The action of ``program`` for call ``nr`` (classic BPF: LD ABS, JEQ, JGE, JSET, RET);
    ``args`` are the call's arguments after the first."""
    rest = (*args, *[0] * (5 - len(args)))
    data = struct.pack("=iIQ6Q", nr, arch, 0, arg0, *rest)
    insns = [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:
            acc = struct.unpack_from("=I", data, k)[0]
            pc += 1
        elif code in (0x15, 0x35, 0x45):
            hit = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += 1 + (jt if hit else jf)
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


BASELINE = _seccomp.program("baseline", forbid_namespaces=False)
STRICT = _seccomp.program("strict", forbid_namespaces=True)


@pytest.mark.parametrize("program", [BASELINE, STRICT])
def test_keyring_calls_are_refused_on_both_abis(program: bytes) -> None:
    assert run(program, 250) == EPERM  # keyctl, x86_64
    assert run(program, 288, I386) == EPERM  # keyctl, i386
    assert run(program, 0) == ALLOW  # read
    assert run(program, 3, I386) == ALLOW  # read, i386


def test_strict_refuses_its_list_and_namespaces() -> None:
    for name in _seccomp.STRICT:
        assert run(STRICT, _seccomp._X86_64[name]) == EPERM, name
        assert run(BASELINE, _seccomp._X86_64[name]) == (
            EPERM if name in _seccomp.BASELINE else ALLOW
        )
    assert run(STRICT, 308) == EPERM  # setns
    assert run(STRICT, 435) == ENOSYS  # clone3: libc falls back to clone
    assert run(STRICT, 56, arg0=0x10000000 | 17) == EPERM  # clone(CLONE_NEWUSER)
    assert run(STRICT, 56, arg0=0x003D0F00) == ALLOW  # clone of a thread
    assert run(STRICT, 272, arg0=0x20000) == EPERM  # unshare(CLONE_NEWNS)
    assert run(STRICT, 272, arg0=0x400) == ALLOW  # unshare(CLONE_FILES)
    assert run(STRICT, 120, I386, arg0=0x40000000) == EPERM  # clone(CLONE_NEWNET), i386
    assert run(BASELINE, 435) == ALLOW


def test_x32_and_unknown_architectures_are_refused_not_killed() -> None:
    assert run(BASELINE, 0x40000000 | 0) == EPERM
    assert run(BASELINE, 63, AARCH64) == EPERM


SETUID, SETGID, O_CREAT, O_TMPFILE = 0o4000, 0o2000, 0o100, 0o20200000


def test_strict_refuses_set_id_modes_and_allows_the_others() -> None:
    chmod, fchmodat, openat, openat2, mknod = 90, 268, 257, 437, 133
    assert run(STRICT, chmod, args=(0o4755,)) == EPERM
    assert run(STRICT, chmod, args=(0o2755,)) == EPERM
    assert run(STRICT, chmod, args=(0o755,)) == ALLOW
    assert run(STRICT, fchmodat, args=(0, SETUID | 0o755)) == EPERM
    assert run(STRICT, 15, I386, args=(SETGID,)) == EPERM  # chmod, i386
    assert run(STRICT, openat, args=(0, O_CREAT, SETUID | 0o755)) == EPERM
    assert run(STRICT, openat, args=(0, O_TMPFILE, SETGID | 0o644)) == EPERM
    assert run(STRICT, openat, args=(0, O_CREAT, 0o644)) == ALLOW
    # Not creating: the mode argument is ignored by the kernel, whatever it holds.
    assert run(STRICT, openat, args=(0, 0, SETUID)) == ALLOW
    assert run(STRICT, mknod, args=(0o100000 | SETUID,)) == EPERM
    assert run(STRICT, openat2) == ENOSYS  # its mode is in memory: callers fall back to openat
    assert run(BASELINE, chmod, args=(0o4755,)) == ALLOW
