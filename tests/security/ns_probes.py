"""Escape attempts against the namespace backends' kernel-facing promises (keyring, seccomp,
cgroups), with the sentinel exit codes of :mod:`tests.security.probes`."""

from __future__ import annotations

from tests.security.probes import script

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
