"""The seccomp filter of the namespace backends: which system calls a command may not make.

Two sets, chosen by the policy's ``syscall_filter``: ``baseline`` (every level) refuses the kernel
keyring, which no namespace isolates; ``strict`` (``strict``, ``locked``) also refuses what
Docker's default profile and Flatpak refuse to unprivileged programs: ``io_uring``,
``userfaultfd``, ``bpf``, ``perf_event_open``, ``kexec``, module loading, ``ptrace`` and reading
or writing other processes' memory, and set-user-ID or set-group-ID bits in a file's mode
(``chmod``, ``open`` creating, ``mknod``...: what the command writes in its workspace is the
workspace owner's on the host). Where the policy forbids nested user namespaces, creating any
namespace (``clone``/``unshare`` with a ``CLONE_NEW*`` flag, ``setns``) is refused as well.

``bwrap`` loads the program itself, the ``unshare`` backend's set-up step installs it, and a
sandbox without a launcher of the engine's own (a container) runs the command through
:data:`INSTALLER`, which installs the same program and execs the command.

A refused call fails with ``EPERM``; ``clone3`` fails with ``ENOSYS`` where namespaces are
refused (its flags sit in memory a filter cannot read, and C libraries fall back to ``clone``
only on ``ENOSYS``). The program is classic BPF built here, for x86_64 with its i386 compat
entry points; x32 calls are refused outright. Other architectures get no filter: backends
refuse to run there rather than run without one.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import functools
import hashlib
import os
import platform
import struct
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import _engine_cache

#: Calls refused under each ``syscall_filter`` value (``strict`` includes ``baseline``).
BASELINE: tuple[str, ...] = ("keyctl", "add_key", "request_key")
STRICT: tuple[str, ...] = (
    *BASELINE,
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "userfaultfd",
    "bpf",
    "perf_event_open",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
)
#: Calls refused where nested user namespaces are forbidden (``clone`` and ``unshare`` only
#: with a namespace flag; ``clone3`` with ``ENOSYS``).
NAMESPACES: tuple[str, ...] = ("setns",)
#: Every ``CLONE_NEW*`` flag (time, mount, cgroup, UTS, IPC, user, PID, network).
CLONE_NEW_FLAGS = 0x00000080 | 0x00020000 | 0x7E000000
#: Under ``strict``: calls refused when their mode (argument at the index given) sets the
#: set-user-ID or set-group-ID bit. What a command writes in its workspace is stored as the
#: workspace owner's on the host (root's, on a root engine): such a bit would make it a program
#: that runs as that owner there.
SETID_MODE_ARG: dict[str, int] = {
    "chmod": 1, "fchmod": 1, "fchmodat": 2, "fchmodat2": 2, "creat": 1, "mknod": 1, "mknodat": 2,
}  # fmt: skip
#: ``open``-like calls: ``(flags index, mode index)``, refused when creating (``O_CREAT`` or
#: ``O_TMPFILE``) with a mode that sets either bit.
SETID_OPEN_ARGS: dict[str, tuple[int, int]] = {"open": (1, 2), "openat": (2, 3)}
#: ``openat2`` keeps its mode in memory the filter cannot read: ``ENOSYS`` under ``strict`` (C
#: libraries' ``open`` does not use it; callers fall back to ``openat``).
SET_ID_BITS = 0o6000
_CREATING = 0o100 | 0o20000000  # O_CREAT | __O_TMPFILE

# Numbers of the calls above, per ABI (missing: the ABI has no such call).
_X86_64 = {
    "keyctl": 250, "add_key": 248, "request_key": 249, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "userfaultfd": 323, "bpf": 321,
    "perf_event_open": 298, "kexec_load": 246, "kexec_file_load": 320, "init_module": 175,
    "finit_module": 313, "delete_module": 176, "ptrace": 101, "process_vm_readv": 310,
    "process_vm_writev": 311, "setns": 308, "clone": 56, "unshare": 272, "clone3": 435,
    "chmod": 90, "fchmod": 91, "fchmodat": 268, "fchmodat2": 452, "creat": 85, "mknod": 133,
    "mknodat": 259, "open": 2, "openat": 257, "openat2": 437,
}  # fmt: skip
_I386 = {
    "keyctl": 288, "add_key": 286, "request_key": 287, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "userfaultfd": 374, "bpf": 357,
    "perf_event_open": 336, "kexec_load": 283, "init_module": 128, "finit_module": 350,
    "delete_module": 129, "ptrace": 26, "process_vm_readv": 347, "process_vm_writev": 348,
    "setns": 346, "clone": 120, "unshare": 310, "clone3": 435,
    "chmod": 15, "fchmod": 94, "fchmodat": 306, "fchmodat2": 452, "creat": 8, "mknod": 14,
    "mknodat": 297, "open": 5, "openat": 295, "openat2": 437,
}  # fmt: skip
_AUDIT_ARCH_X86_64 = 0xC000003E
_AUDIT_ARCH_I386 = 0x40000003
_X32_SYSCALL_BIT = 0x40000000

_LD_ABS_W = 0x20
_JEQ = 0x15
_JGE = 0x35
_JSET = 0x45
_RET = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_OFFSET_NR, _OFFSET_ARCH, _OFFSET_ARG0 = 0, 4, 16  # struct seccomp_data (little-endian)

SUPPORTED_MACHINES = ("x86_64",)


def unsupported() -> str | None:
    """Why this machine gets no filter (``None``: it does)."""
    machine = platform.machine()
    if machine in SUPPORTED_MACHINES:
        return None
    return (
        f"the cleanroom's seccomp filter is built for {', '.join(SUPPORTED_MACHINES)} only "
        f"(this machine is {machine}): use the docker backend, whose default profile applies"
    )


@dataclass(frozen=True)
class _Insn:
    code: int
    k: int
    jt: str | int = 0
    jf: str | int = 0


def _abi(
    numbers: dict[str, int], denied: Sequence[str], namespaces: bool, tag: str, setid: bool
) -> Iterator[_Insn | str]:
    """Instructions filtering one ABI (the call number is loaded already); ``str`` is a label."""
    for name in denied:
        if name in numbers:
            yield _Insn(_JEQ, numbers[name], jt="eperm")
    if setid:
        yield from _setid_modes(numbers, tag)
    if namespaces:
        for name in NAMESPACES:
            yield _Insn(_JEQ, numbers[name], jt="eperm")
        yield _Insn(_JEQ, numbers["clone3"], jt="enosys")
        for name in ("clone", "unshare"):
            yield _Insn(_JEQ, numbers[name], jf=f"{tag}-after-{name}")
            yield _Insn(_LD_ABS_W, _OFFSET_ARG0)
            yield _Insn(_JSET, CLONE_NEW_FLAGS, jt="eperm")
            yield _Insn(_RET, _RET_ALLOW)
            yield f"{tag}-after-{name}"
    yield _Insn(_RET, _RET_ALLOW)


def _arg(index: int) -> int:
    return _OFFSET_ARG0 + 8 * index  # the low half of the argument (little-endian)


def _setid_modes(numbers: dict[str, int], tag: str) -> Iterator[_Insn | str]:
    """Refuse modes with set-ID bits (see :data:`SETID_MODE_ARG`); each matched call is decided
    here (the accumulator no longer holds its number)."""
    yield _Insn(_JEQ, numbers["openat2"], jt="enosys")
    for name, mode in SETID_MODE_ARG.items():
        yield _Insn(_JEQ, numbers[name], jf=f"{tag}-after-{name}")
        yield _Insn(_LD_ABS_W, _arg(mode))
        yield _Insn(_JSET, SET_ID_BITS, jt="eperm")
        yield _Insn(_RET, _RET_ALLOW)
        yield f"{tag}-after-{name}"
    for name, (flags, mode) in SETID_OPEN_ARGS.items():
        yield _Insn(_JEQ, numbers[name], jf=f"{tag}-after-{name}")
        yield _Insn(_LD_ABS_W, _arg(flags))
        yield _Insn(_JSET, _CREATING, jf=2)  # not creating: allowed below
        yield _Insn(_LD_ABS_W, _arg(mode))
        yield _Insn(_JSET, SET_ID_BITS, jt="eperm")
        yield _Insn(_RET, _RET_ALLOW)
        yield f"{tag}-after-{name}"


def _program(denied: Sequence[str], namespaces: bool, setid: bool = False) -> list[_Insn | str]:
    return [
        _Insn(_LD_ABS_W, _OFFSET_ARCH),
        _Insn(_JEQ, _AUDIT_ARCH_X86_64, jf="not-x86_64"),
        _Insn(_LD_ABS_W, _OFFSET_NR),
        _Insn(_JGE, _X32_SYSCALL_BIT, jt="eperm"),  # the x32 ABI: refused whole
        *_abi(_X86_64, denied, namespaces, "x86_64", setid),
        "not-x86_64",
        _Insn(_JEQ, _AUDIT_ARCH_I386, jf="eperm"),  # an ABI we have no table for
        _Insn(_LD_ABS_W, _OFFSET_NR),
        *_abi(_I386, denied, namespaces, "i386", setid),
        "eperm",
        _Insn(_RET, _RET_ERRNO | errno.EPERM),
        "enosys",
        _Insn(_RET, _RET_ERRNO | errno.ENOSYS),
    ]


def assemble(items: Sequence[_Insn | str]) -> bytes:
    """``struct sock_filter[]`` of ``items``, labels resolved to forward jump offsets."""
    labels: dict[str, int] = {}
    insns: list[_Insn] = []
    for item in items:
        if isinstance(item, str):
            labels[item] = len(insns)
        else:
            insns.append(item)
    out = bytearray()
    for index, insn in enumerate(insns):
        jumps = []
        for target in (insn.jt, insn.jf):
            offset = labels[target] - index - 1 if isinstance(target, str) else target
            if not 0 <= offset <= 255:
                raise ValueError(f"seccomp jump out of range at instruction {index}")
            jumps.append(offset)
        out += struct.pack("=HBBI", insn.code, jumps[0], jumps[1], insn.k)
    return bytes(out)


#: Python source run as ``python3 -S -I -c INSTALLER HEX_PROGRAM PROGRAM ARGS...`` inside a
#: sandbox: sets ``no_new_privs``, installs the program (given in hex), restores the signal
#: dispositions Python changes (ignored ones would survive ``exec``) and execs ``PROGRAM``.
#: ``python3`` itself sets ``LC_CTYPE`` in a C locale: the caller unsets it after.
INSTALLER = """
import ctypes, os, signal, sys
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
code = bytes.fromhex(sys.argv[1])
prog = Prog(len(code) // 8, code)
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.addressof(prog), 0, 0):
    os.write(2, b"cleanroom-seccomp: %s\\n" % os.strerror(ctypes.get_errno()).encode())
    os._exit(125)
for name in ("SIGPIPE", "SIGXFSZ"):
    signal.signal(getattr(signal, name), signal.SIG_DFL)
os.execv(sys.argv[2], sys.argv[2:])
"""
#: How a line of :data:`INSTALLER` saying it could not install the program starts (exit 125).
INSTALLER_MARK = "cleanroom-seccomp:"


def installer_argv(python: str, syscall_filter: str, *, forbid_namespaces: bool) -> list[str]:
    """The command prefix that installs the filter of a policy, then execs what follows."""
    code = program(syscall_filter, forbid_namespaces=forbid_namespaces).hex()
    return [python, "-S", "-I", "-c", INSTALLER, code]


def denied_calls(syscall_filter: str) -> tuple[str, ...]:
    """The calls a ``syscall_filter`` value refuses (namespace creation aside)."""
    return STRICT if syscall_filter == "strict" else BASELINE


@functools.cache
def program(syscall_filter: str, *, forbid_namespaces: bool) -> bytes:
    """The BPF program for a policy's ``syscall_filter`` and nested-namespace setting (built
    once per combination)."""
    strict = syscall_filter == "strict"
    return assemble(_program(denied_calls(syscall_filter), forbid_namespaces, setid=strict))


_lock = threading.Lock()
_files: dict[tuple[str, bool, int], str] = {}
_temporary: dict[int, list[str]] = {}  # per process: fallback files to remove at exit


def program_file(syscall_filter: str, *, forbid_namespaces: bool) -> str:
    """A file holding :func:`program` (bubblewrap reads it from a descriptor): kept in the
    engine's cache under the digest of its bytes, so processes share it and one killed leaves
    nothing behind; in a private temporary directory, removed at exit, where that cache cannot
    be used."""
    key = (syscall_filter, forbid_namespaces, os.getpid())
    with _lock:
        path = _files.get(key)
        if path is None or not os.path.exists(path):
            code = program(syscall_filter, forbid_namespaces=forbid_namespaces)
            path = _cached(code) or _private(code, f"{syscall_filter}-{int(forbid_namespaces)}")
            _files[key] = path
        return path


def _cached(code: bytes) -> str | None:
    """``code``'s file in the engine's cache (written there unless a good one is found);
    ``None`` where the cache cannot be used."""
    directory, _ = _engine_cache.prepare(_engine_cache.cache_dir())
    if directory is None:
        return None
    target = directory / f"seccomp-{hashlib.sha256(code).hexdigest()[:16]}.bpf"
    if _holds(target, code):
        return str(target)
    try:
        _engine_cache.place(target, code, 0o444)
    except OSError:  # e.g. a directory planted at the name: the private fallback
        return None
    return str(target)


def _holds(target: Path, code: bytes) -> bool:
    if not _engine_cache.trusted_file(target, executable=False):
        return False
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as file:
        return file.read(len(code) + 1) == code


def _private(code: bytes, name: str) -> str:
    directory = tempfile.mkdtemp(prefix="cleanroom-seccomp-")
    path = os.path.join(directory, f"{name}.bpf")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(fd, "wb") as f:
        f.write(code)
    _temporary.setdefault(os.getpid(), []).append(path)
    return path


def _remove_files() -> None:
    for path in _temporary.get(os.getpid(), []):
        with contextlib.suppress(OSError):
            os.unlink(path)
            os.rmdir(os.path.dirname(path))


atexit.register(_remove_files)
