"""In-namespace set-up step of the ``unshare`` backend (``python -S -I _nsinit.py FD [SCRIPT_FD]``).

util-linux ``unshare`` creates the namespaces and execs this script as uid 0 of a fresh user
namespace (pid 1 of a fresh PID namespace when the policy isolates PIDs). The script builds the
sandbox's filesystem from the plan's operations (the same plan the ``bwrap`` backend renders),
pivots into it, sets the host name, brings up loopback and forbids nested user namespaces if
asked. As pid 1 it keeps its capabilities in the sandbox's user namespace (an empty bounding
set, no ambient or inheritable ones, not dumpable: the command cannot reach it, as in
``_nsinit.c``) and forks the command's process, which applies the rlimits, joins a fresh session
keyring, drops every capability, sets ``no_new_privs``, installs the seccomp program of the plan
and runs the command with exactly the plan's environment (Python's locale coercion must not leak
``LC_CTYPE`` into it); it then reaps orphans until the command exits, and exits with its status
(``128 + N`` after signal N), which tears the PID namespace down. Outside a PID namespace of its
own the same process confines itself and runs the command.

Standalone on purpose: only the standard library, no package imports, and few of those (the
plan is a ``marshal`` dump, read from the descriptor named by the only argument: ``json`` would
import ``re``, 10 ms on every command; a command line would show the environment to every user).
"""

from __future__ import annotations

import ctypes
import marshal
import os
import resource
import signal
import sys
from typing import Any

SETUP_FAILED = 125
MARK = "cleanroom-nsinit:"

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NODEV = 0x4
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (added in Linux 5.12)
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219, "riscv64": 219, "ppc64le": 310, "s390x": 280}
KEYCTL_JOIN_SESSION_KEYRING = 1
PR_CAPBSET_DROP = 24
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
CAP_VERSION_3 = 0x20080522

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
RLIMITS = {
    "fsize": resource.RLIMIT_FSIZE,
    "nofile": resource.RLIMIT_NOFILE,
    "cpu": resource.RLIMIT_CPU,
    "data": resource.RLIMIT_DATA,
    "nproc": resource.RLIMIT_NPROC,
}

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


class SetupError(Exception):
    pass


class MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    _check(
        libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        f"mount {source or fstype} on {target}",
    )


def set_attributes(target: str, attrs: int) -> None:
    attr = MountAttr(attrs, 0, 0, 0)
    _check(
        libc.syscall(
            SYS_MOUNT_SETATTR,
            AT_FDCWD,
            target.encode(),
            AT_RECURSIVE,
            ctypes.byref(attr),
            ctypes.sizeof(attr),
        ),
        f"make {target} read-only",
    )


def pivot_root(new_root: str, put_old: str) -> None:
    machine = os.uname().machine
    number = SYS_PIVOT_ROOT.get(machine)
    if number is None:
        raise SetupError(f"pivot_root: unknown syscall number on {machine}")
    _check(libc.syscall(number, new_root.encode(), put_old.encode()), "pivot_root")


def ensure(path: str, like: str) -> None:
    """Create ``path`` (a directory, or an empty file when ``like`` is not a directory)."""
    if os.path.lexists(path):
        return
    if os.path.isdir(like):
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w"):
            pass


def bind(source: str, target: str, *, read_only: bool, nodev: bool = False) -> None:
    ensure(target, source)
    mount(source, target, None, MS_BIND | MS_REC)
    attrs = (MOUNT_ATTR_RDONLY if read_only else 0) | (MOUNT_ATTR_NODEV if nodev else 0)
    if attrs:
        set_attributes(target, attrs)


def tmpfs(target: str, mode: str, size: int | None = None, flags: int = 0) -> None:
    os.makedirs(target, exist_ok=True)
    data = f"mode={mode}" + (f",size={size}" if size else "")
    mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | flags, data)


def make_dev(target: str) -> None:
    tmpfs(target, "0755")
    for node in DEV_NODES:
        bind(f"/oldroot/dev/{node}", f"{target}/{node}", read_only=False)
    for name, link in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ):
        os.symlink(link, f"{target}/{name}")
    os.mkdir(f"{target}/shm")
    os.mkdir(f"{target}/pts")
    # Pseudo-terminals are optional: a failure to mount devpts is not an error.
    libc.mount(b"devpts", f"{target}/pts".encode(), b"devpts", MS_NOSUID | MS_NOEXEC,
               b"newinstance,ptmxmode=0666,mode=620")  # fmt: skip


def apply(op: list[Any], own_pid_ns: bool) -> None:
    kind, target, source, size = op
    dest = "/newroot" + target if target != "/" else "/newroot"
    if kind in ("ro-bind", "bind"):
        bind("/oldroot" + source, dest, read_only=kind == "ro-bind")
    elif kind == "symlink":
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.symlink(source, dest)
    elif kind == "dir":
        os.makedirs(dest, exist_ok=True)
    elif kind == "hide-dir":
        tmpfs(dest, "0555")  # the mount read-only, not the tmpfs, as bubblewrap makes it
        mount(None, dest, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    elif kind == "hide-file":
        bind("/oldroot/dev/null", dest, read_only=True, nodev=True)
    elif kind == "tmpfs":
        tmpfs(dest, "1777", size)
    elif kind == "proc":
        os.makedirs(dest, exist_ok=True)
        if own_pid_ns:
            mount("proc", dest, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        else:
            bind("/oldroot/proc", dest, read_only=False)
    elif kind == "dev":
        make_dev(dest)
    elif kind == "remount-ro":
        mount(None, dest, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    else:
        raise SetupError(f"unknown filesystem operation {kind!r}")


def loopback_up() -> None:
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def keep_capabilities(last_cap: int) -> None:
    """What PID 1 keeps while the command runs: its capabilities in the sandbox's user
    namespace, with an empty bounding set and no ambient or inheritable ones (as _nsinit.c's
    keep_capabilities), so that the command, holding none, cannot trace it or read it."""
    for cap in range(last_cap + 1):
        _check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")
    _check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient caps")
    header = CapHeader(CAP_VERSION_3, 0)
    data = (CapData * 2)()
    _check(libc.capget(ctypes.byref(header), ctypes.byref(data)), "capget")
    data[0].inheritable = data[1].inheritable = 0
    _check(libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")


def drop_held_privileges() -> None:
    """No capability held or to be gained (the bounding set emptied: keep_capabilities)."""
    header = CapHeader(CAP_VERSION_3, 0)
    data = (CapData * 2)()
    _check(libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def fresh_session_keyring() -> None:
    """A new, empty session keyring: the engine's (inherited) must not be reachable."""
    number = SYS_KEYCTL.get(os.uname().machine)
    if number is None:
        raise SetupError(f"keyctl: unknown syscall number on {os.uname().machine}")
    if libc.syscall(number, KEYCTL_JOIN_SESSION_KEYRING, None) < 0:
        err = ctypes.get_errno()
        if err != 38:  # ENOSYS: a kernel without keyrings has nothing to inherit
            raise SetupError(f"join a fresh session keyring: {os.strerror(err)}")


def install_seccomp(program: bytes) -> None:
    prog = SockFprog(len(program) // 8, program)
    _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0), "seccomp")


def build(plan: dict[str, Any]) -> int:
    """The sandbox's filesystem, host name, network and user namespaces; returns the kernel's
    last capability."""
    own_pid_ns = os.getpid() == 1
    if plan["net"]:
        loopback_up()  # first: it imports modules that the pivot will hide
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last_cap = int(f.read())
    if not plan["nested_userns"]:
        # Per user namespace: 0 forbids the command from creating any below ours.
        with open("/proc/sys/user/max_user_namespaces", "w") as f:
            f.write("0")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    tmpfs("/tmp", "0755")
    os.chdir("/tmp")
    os.mkdir("newroot")
    os.mkdir("oldroot")
    pivot_root(".", "oldroot")
    tmpfs("/newroot", "0755")
    for op in plan["ops"]:
        apply(op, own_pid_ns)
    os.chdir("/newroot")
    pivot_root(".", ".")
    _check(libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/")
    hostname = plan["hostname"].encode()
    _check(libc.sethostname(hostname, len(hostname)), "sethostname")
    return last_cap


def confine(plan: dict[str, Any]) -> None:
    """What the command's process takes last: limits, keyring, no privileges, seccomp, cwd."""
    for name, value in plan["rlimits"].items():
        soft, hard = value if isinstance(value, list) else (value, value)
        resource.setrlimit(RLIMITS[name], (soft, hard))
    fresh_session_keyring()
    drop_held_privileges()
    install_seccomp(plan["seccomp"])
    os.chdir(plan["cwd"])
    os.setsid()


def execute(argv: list[str], env: dict[str, str]) -> None:
    """exec ``argv``; on failure report like a shell (127 not found, 126 otherwise)."""
    # Python ignores these; ignored dispositions survive exec, so restore the defaults.
    for name in ("SIGPIPE", "SIGXFSZ", "SIGXFZ"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    try:
        os.execvpe(argv[0], argv, env)
    except FileNotFoundError:
        os.write(2, f"cleanroom: command not found: {argv[0]}\n".encode())
        os._exit(127)
    except OSError as exc:
        os.write(2, f"cleanroom: cannot execute {argv[0]}: {exc.strerror}\n".encode())
        os._exit(126)


def reap_until(child: int) -> int:
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 0
        if pid == child and not os.WIFSTOPPED(status):  # a traced command stops, then goes on
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code


def read_plan(fd: int) -> Any:
    """The plan, from the descriptor the launcher opened (then closed: the command never
    inherits it)."""
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return marshal.loads(b"".join(chunks))


def main() -> None:
    plan = read_plan(int(sys.argv[1]))
    if len(sys.argv) > 2:  # the descriptor this script was read from: the command gets none
        os.close(int(sys.argv[2]))
    child = 0  # outside a PID namespace of its own (a policy sharing the host's): no init
    try:
        keep_capabilities(build(plan))
        if os.getpid() == 1:  # not dumpable either: the command must not read it
            _check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "make the init non-dumpable")
            child = os.fork()
        if child == 0:
            confine(plan)
    except (SetupError, OSError) as exc:
        os.write(2, f"{MARK} {exc}\n".encode())
        os._exit(SETUP_FAILED)
    if child == 0:
        execute(plan["argv"], plan["env"])
    os._exit(reap_until(child))


if __name__ == "__main__":
    main()
