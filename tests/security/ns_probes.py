"""Escape attempts against the namespace backends' kernel-facing promises (keyring, seccomp,
cgroups), with the sentinel exit codes of :mod:`pytest_cleanroom.testing.probes`."""

from __future__ import annotations

from pytest_cleanroom.testing.probes import script

# args: the secret held in a key of the engine's session keyring
KEYRING = script("""
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
KEYCTL_GET_KEYRING_ID, KEYCTL_LINK, KEYCTL_READ, KEYCTL_SEARCH = 0, 8, 11, 10
SESSION = ctypes.c_long(-3)
def keyctl(*a):
    a = [ctypes.c_long(x) if isinstance(x, int) else x for x in a] + [ctypes.c_long(0)] * 4
    return libc.syscall(ctypes.c_long(250), *a[:5])
secret = args[0].encode()
listed = []
for name in ("/proc/keys", "/proc/key-users"):
    try:
        with open(name) as f:
            text = f.read()
    except OSError:
        continue
    if "cleanroom-probe-key" in text:
        escaped(f"{name} names the engine's key")
    listed += [int(line.split()[0], 16) for line in text.splitlines() if name == "/proc/keys"]
buf = ctypes.create_string_buffer(4096)
candidates = set(listed) | {-1, -2, -3, -4, -5}  # thread, process, session, user, user-session
found = keyctl(KEYCTL_SEARCH, SESSION, b"user", b"cleanroom-probe-key", 0)
if found > 0:
    escaped("found the engine's key in the session keyring")
    candidates.add(found)
for key in sorted(candidates):
    n = keyctl(KEYCTL_READ, key, buf, 4096)
    if n > 0 and secret in buf.raw[:n]:
        escaped(f"read the engine's key through {key}")
    if key > 0 and keyctl(KEYCTL_LINK, key, SESSION) == 0:
        escaped(f"linked key {key:#x} into its own session keyring")
added = libc.syscall(ctypes.c_long(248), b"user", b"planted", b"x", 1, SESSION)
if added >= 0:
    escaped("added a key to its session keyring")
elif ctypes.get_errno() != errno.EPERM:
    escaped(f"add_key failed with {errno.errorcode[ctypes.get_errno()]}, not EPERM")
""")

# args: "strict" or "baseline", then "1" when namespace creation must be refused
SECCOMP = script(r"""
import platform, signal
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.syscall.argtypes = [ctypes.c_long] * 7
level, namespaces = args[0], args[1] == "1"
def call(nr, *a):
    a = list(a) + [0] * (6 - len(a))
    result = libc.syscall(nr, *a)
    return result, (ctypes.get_errno() if result < 0 else 0)
def refused(name, nr, *a, want=errno.EPERM):
    result, err = call(nr, *a)
    if result >= 0:
        escaped(f"{name} succeeded")
    elif err != want:
        escaped(f"{name} failed with {errno.errorcode.get(err, err)}, not {errno.errorcode[want]}")
assert platform.machine() == "x86_64"
keyring = {"keyctl": 250, "add_key": 248, "request_key": 249}
strict = {
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "userfaultfd": 323,
    "bpf": 321, "perf_event_open": 298, "kexec_load": 246, "kexec_file_load": 320,
    "init_module": 175, "finit_module": 313, "delete_module": 176, "process_vm_readv": 310,
    "process_vm_writev": 311,
}
for name, nr in keyring.items():
    refused(name, nr)
if level == "strict":
    for name, nr in strict.items():
        refused(name, nr)
    refused("ptrace(PTRACE_PEEKDATA)", 101, 2, 4194304)  # ESRCH, were it allowed
if namespaces:
    CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET = 0x10000000, 0x20000, 0x40000000
    refused("unshare(CLONE_NEWUSER)", 272, CLONE_NEWUSER)
    refused("unshare(CLONE_NEWNS)", 272, CLONE_NEWNS)
    refused("unshare(CLONE_NEWNET)", 272, CLONE_NEWNET)
    refused("setns", 308, 0, 0)
    refused("clone(CLONE_NEWUSER)", 56, CLONE_NEWUSER | signal.SIGCHLD)
    refused("clone3", 435, 0, 0, want=errno.ENOSYS)
# Refusing is all a filter may do: ordinary work (threads, processes) goes on.
out = subprocess.run(["sh", "-c", "echo alive"], capture_output=True, text=True).stdout
if out != "alive\n":
    print("BROKEN: cannot start a process", out)
    sys.exit(3)
""")

# Defines nested_namespaces(): enter new user + mount + cgroup namespaces (root mapped where the
# kernel lets it: without a mapping the namespace's capabilities still hold); False if refused.
_NESTED = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def nested_namespaces():
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(0x10000000 | 0x20000 | 0x02000000) != 0:
        return False
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        try:
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
        except OSError:
            pass
    return True
"""

# args: the name of a foreign cgroup (holding a host process) to look for in every hierarchy
CGROUPS = script(
    _NESTED
    + r"""
foreign = args[0]
HIERARCHIES = ["memory", "pids", "cpu", "cpuacct", "cpuset", "devices", "freezer", "blkio",
               "net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc", "name=systemd",
               "name=cleanroom-escape", None]
def writable(path):
    try:
        os.close(os.open(path, os.O_WRONLY))
        return True
    except OSError:
        return False
def search(top, label):
    for dirpath, dirnames, filenames in os.walk(top):
        if os.path.basename(dirpath) == foreign:
            escaped(f"{label}: sees the foreign cgroup {dirpath}")
            for knob in ("cgroup.kill", "cgroup.procs", "pids.max", "memory.limit_in_bytes"):
                if writable(os.path.join(dirpath, knob)):
                    escaped(f"{label}: {knob} of the foreign cgroup is writable")
# Through the host's /sys, bound read-only into the sandbox: seen, but nothing writable.
for dirpath, dirnames, filenames in os.walk("/sys/fs/cgroup"):
    if os.path.basename(dirpath) == foreign:
        for knob in ("cgroup.kill", "cgroup.procs", "pids.max", "memory.limit_in_bytes"):
            if writable(os.path.join(dirpath, knob)):
                escaped(f"/sys/fs/cgroup: {knob} of the foreign cgroup is writable")
# Through cgroupfs mounted in nested user + mount + cgroup namespaces, where they are allowed.
if nested_namespaces():
    for n, hierarchy in enumerate(HIERARCHIES):
        target = f"/tmp/cg{n}"
        os.makedirs(target, exist_ok=True)
        fstype, options = (b"cgroup", hierarchy.encode()) if hierarchy else (b"cgroup2", None)
        if libc.mount(b"none", target.encode(), fstype, 0, options) != 0:
            continue
        label = f"nested mount of {hierarchy or 'cgroup2'}"
        search(target, label)
        if hierarchy and hierarchy.startswith("name=cleanroom"):
            escaped(f"{label}: created a new hierarchy")
        try:
            procs = open(f"{target}/cgroup.procs").read().split()
        except OSError:
            procs = []
        if len(procs) > 20:
            escaped(f"{label}: the mount's root holds {len(procs)} processes, not the command's")
        if hierarchy is None and writable(f"{target}/cgroup.kill") and len(procs) > 20:
            escaped(f"{label}: cgroup.kill of a group holding others is writable")
"""
)

# args: MiB to allocate after raising every memory limit the command can reach
RAISE_OWN_LIMITS = (
    _NESTED
    + r"""
import sys
if nested_namespaces():
    for hierarchy in ("memory", "pids"):
        target = f"/tmp/{hierarchy}"
        os.makedirs(target, exist_ok=True)
        if libc.mount(b"none", target.encode(), b"cgroup", 0, hierarchy.encode()) != 0:
            continue
        for dirpath, _, filenames in os.walk(target):
            # memsw may never be below the memory limit: lift it first.
            for knob, value in (("memory.memsw.limit_in_bytes", "-1"),
                                ("memory.limit_in_bytes", "-1"), ("pids.max", "max")):
                if knob in filenames:
                    try:
                        with open(os.path.join(dirpath, knob), "w") as f:
                            f.write(value)
                        print(f"raised {dirpath}/{knob}", flush=True)
                    except OSError:
                        pass
hog = bytearray(int(sys.argv[1]) << 20)
for i in range(0, len(hog), 4096):
    hog[i] = 1
print("ESCAPED: allocated past the memory limit", flush=True)
sys.exit(66)
"""
)

# A daemon that leaves its command's process tree and hides in a child cgroup of its own (where
# it may mount cgroupfs); prints "hidden" or "not hidden" and exits, leaving the daemon behind.
HIDE_IN_CHILD_CGROUP = (
    _NESTED
    + r"""
import sys
read_end, write_end = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.close(read_end)
        moved = 0
        if nested_namespaces():
            for n, options in enumerate([b"pids", b"freezer", b"memory", b"cpuacct", None]):
                target = f"/tmp/cg{n}"
                os.makedirs(target, exist_ok=True)
                fstype = b"cgroup" if options else b"cgroup2"
                if libc.mount(b"none", target.encode(), fstype, 0, options) != 0:
                    continue
                try:
                    os.makedirs(f"{target}/hide/deeper", exist_ok=True)
                    with open(f"{target}/hide/deeper/cgroup.procs", "w") as f:
                        f.write(str(os.getpid()))
                    moved += 1
                except OSError:
                    pass
        os.write(write_end, b"hidden\n" if moved else b"not hidden\n")
        os.close(write_end)
        os.execvp("sleep", ["sleep", "300"])
    os._exit(0)
os.close(write_end)
sys.stdout.write(os.read(read_end, 100).decode())
"""
)

# args: the host's network interface names (loopback aside)
HOST_INTERFACE_NAMES = script(r"""
names = set(args)
try:
    seen = set(os.listdir("/sys/class/net"))
except OSError:
    seen = set()
if seen & names:
    escaped(f"/sys/class/net lists the host's {sorted(seen & names)}")
for dirpath, dirnames, filenames in os.walk("/sys/devices"):
    if os.path.basename(dirpath) == "net" and names & set(dirnames):
        escaped(f"{dirpath} lists the host's {sorted(names & set(dirnames))}")
    dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
for name in sorted(names):
    for top in ("/sys/class/net", "/sys/devices/virtual/net"):
        if os.path.exists(f"{top}/{name}"):
            escaped(f"{top} shows the host's interface {name}")
""")

# Writes to /tmp, then /dev/shm, then /dev, until each is full; prints the bytes each took.
FILL_SCRATCH = r"""
import os, sys
chunk = b"x" * (1 << 20)
for target in ("/tmp/fill", "/dev/shm/fill", "/dev/fill"):
    written = 0
    try:
        with open(target, "wb", buffering=0) as f:
            while written < 1 << 30:
                written += f.write(chunk)
    except OSError:
        pass
    print(target, written, flush=True)
sys.exit(1)
"""

# args: the secret, root-only files holding it, "--", root-only files that must not be read at
# all, "--", unix sockets
ROOT_ONLY_FILES = script(r"""
secret = args[0]
first = args.index("--")
second = args.index("--", first + 1)
for path in args[1:first]:
    read_secret(path, secret)
for path in args[first + 1:second]:
    try:
        with open(path, "rb") as f:
            if f.read(1):
                escaped(f"read {path}")
    except OSError:
        pass
for path in args[second + 1:]:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        escaped(f"connected to {path}")
    except OSError:
        pass
    finally:
        s.close()
""")

# args: the secret, a root-only file holding it (read-only view), a root-only file in a writable
# host directory owned by root (0755), a file the host made in the workspace (0600). Exits 3 if
# the workspace is not writable: that promise holds at every level.
FILE_PERMISSIONS = script(r"""
secret, readable, victim, host_made = args
for path in (readable, victim):
    read_secret(path, secret)
try:
    os.chmod(victim, 0o666)
    escaped(f"chmod {victim}")
except OSError:
    pass
try:
    with open(victim, "a") as f:
        f.write("planted")
    escaped(f"wrote {victim}")
except OSError:
    pass
planted = os.path.join(os.path.dirname(victim), "planted")
try:
    os.close(os.open(planted, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    escaped(f"created {planted} in a directory of root's")
except OSError:
    pass
try:
    os.rename(victim, victim + ".moved")
    escaped(f"renamed {victim} in a directory of root's")
except OSError:
    pass
for path in (victim, host_made):
    try:
        os.chown(path, 4242, 4242)
        escaped(f"chown {path}")
    except OSError:
        pass
for call, what in ((lambda: os.setuid(4242), "setuid"), (lambda: os.setgroups([0]), "setgroups")):
    try:
        call()
        escaped(f"{what} succeeded")
    except OSError:
        pass
try:
    with open(host_made, "a") as f:
        f.write(" and the command's")
    with open("made-here", "w") as f:
        f.write("made in the sandbox")
except OSError as exc:
    print(f"BROKEN: the workspace is not writable: {exc}")
    sys.exit(3)
""")

# args: a file the command may write (in its workspace). Every way to leave a file with a
# set-user-ID or set-group-ID bit: chmod, fchmod, fchmodat, creating with such a mode (open,
# openat, mknod). What is left there is checked on the host.
SET_ID_FILES = script(r"""
import stat
target = args[0]
with open(target, "w") as f:
    f.write("#!/bin/sh\nid -u\n")
attempts = [
    ("chmod 4755", lambda: os.chmod(target, 0o4755)),
    ("chmod 2755", lambda: os.chmod(target, 0o2755)),
    ("fchmodat", lambda: os.chmod(os.path.basename(target), 0o6755,
                                  dir_fd=os.open(os.path.dirname(target) or ".", os.O_RDONLY))),
    ("open 4755", lambda: os.close(os.open(target + ".open", os.O_WRONLY | os.O_CREAT, 0o4755))),
    ("mknod 4755", lambda: os.mknod(target + ".node", stat.S_IFREG | 0o4755)),
]
def fchmod():
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fchmod(fd, 0o4755)
    finally:
        os.close(fd)
attempts.append(("fchmod", fchmod))
for what, call in attempts:
    try:
        call()
    except OSError:
        continue
    for path in (target, target + ".open", target + ".node"):
        if os.path.exists(path) and os.stat(path).st_mode & 0o6000:
            escaped(f"{what} left {path} with mode {os.stat(path).st_mode:o}")
""")
