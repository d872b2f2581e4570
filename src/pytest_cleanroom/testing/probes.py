"""Escape attempts run inside the sandbox, each ending with a sentinel exit code.

A probe exits :data:`BLOCKED` when every attempt failed as it must, :data:`ESCAPED` when one
succeeded (printing which), and anything else means the probe itself broke. Probes are Python
scripts (``python3 -c``): every backend's sandbox has ``python3``.
"""

from __future__ import annotations

BLOCKED = 10
ESCAPED = 66

_PRELUDE = """
import ctypes, errno, os, socket, subprocess, sys
args = sys.argv[1:]
escapes = []
def escaped(what):
    escapes.append(what)
def read_secret(path, secret):
    try:
        with open(path) as f:
            if secret in f.read():
                escaped(f"read {path}")
    except OSError:
        pass
def done():
    if escapes:
        print("ESCAPED: " + "; ".join(escapes))
        sys.exit(66)
    print("blocked")
    sys.exit(10)
"""


def script(body: str) -> str:
    return _PRELUDE + body + "\ndone()\n"


# args: port, banner
CONNECT_HOST_LOOPBACK = script("""
port, banner = int(args[0]), args[1]
for host in ("127.0.0.1", "localhost"):
    try:
        s = socket.create_connection((host, port), timeout=2)
        data = s.recv(100).decode(errors="replace")
    except OSError:
        continue
    if banner in data:
        escaped(f"reached the host's listener on {host}:{port}")
""")

# args: abstract socket name (without the leading NUL)
CONNECT_HOST_ABSTRACT_SOCKET = script("""
s = socket.socket(socket.AF_UNIX)
try:
    s.connect("\\0" + args[0])
    escaped("connected to the host's abstract unix socket")
except OSError:
    pass
""")

NO_ROUTE_OUT = script("""
with open("/proc/net/dev") as f:
    interfaces = [line.split(":")[0].strip() for line in f.readlines()[2:]]
if interfaces != ["lo"]:
    escaped(f"network interfaces besides loopback: {interfaces}")
with open("/proc/net/route") as f:
    routes = f.readlines()[1:]
if routes:
    escaped(f"IPv4 routes: {routes}")
""")

# args: a host path that must not come into existence
WRITE_OUTSIDE_WORKSPACE = script("""
targets = ["/etc/cleanroom-escape", "/usr/cleanroom-escape", "/cleanroom-escape",
           "/var/tmp/cleanroom-escape", "/opt/cleanroom-escape", args[0]]
for target in targets:
    try:
        with open(target, "w") as f:
            f.write("escaped")
        escaped(f"wrote {target}")
    except OSError:
        pass
try:
    os.mkdir("/etc/cleanroom-escape-dir")
    escaped("created a directory in /etc")
except OSError:
    pass
try:
    os.chmod("/etc/passwd", 0o666)
    escaped("chmod /etc/passwd")
except OSError:
    pass
""")

REMOUNT_AND_MOUNT = script("""
libc = ctypes.CDLL(None, use_errno=True)
MS_REMOUNT, MS_BIND = 32, 4096
if libc.mount(None, b"/", None, MS_REMOUNT, None) == 0:
    escaped("remounted / read-write")
if libc.mount(None, b"/etc", None, MS_REMOUNT | MS_BIND, None) == 0:
    escaped("remounted /etc read-write")
os.makedirs("/tmp/m", exist_ok=True)
if libc.mount(b"tmpfs", b"/tmp/m", b"tmpfs", 0, None) == 0:
    escaped("mounted a tmpfs")
if libc.mount(b"/etc", b"/tmp/m", None, MS_BIND, None) == 0:
    escaped("made a bind mount")
if libc.umount2(b"/workspace", 2) == 0:
    escaped("unmounted /workspace")
for path in ("/etc/passwd", "/usr/bin/env"):
    if os.access(path, os.W_OK) and open(path, "a"):
        escaped(f"{path} is writable")
""")

# args: path of a secret file under /root, the secret, then the names /root may list: the first
# part of each directory let through on purpose (the Python running the engine, if it is there)
READ_ROOT = script("""
path, secret, *expected = args
candidates = [path, "/proc/1/root" + path, "/proc/self/root" + path]
for candidate in candidates:
    read_secret(candidate, secret)
try:
    if set(os.listdir("/root")) - set(expected):
        escaped(f"/root is not empty: {os.listdir('/root')}")
except OSError:
    pass
for shadow in ("/etc/shadow", "/etc/gshadow"):
    try:
        with open(shadow) as f:
            if f.read():
                escaped(f"read {shadow}")
    except OSError:
        pass
""")

# args: name and value of a secret host variable
SECRET_ENVIRONMENT = script("""
name, value = args
if name in os.environ or value in "\\n".join(os.environ.values()):
    escaped("the secret is in the environment")
for pid in ("self", "1"):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            if value.encode() in f.read():
                escaped(f"the secret is in /proc/{pid}/environ")
    except OSError:
        pass
""")

# args: pid of a host process
SIGNAL_OR_TRACE_HOST_PROCESS = script("""
pid = int(args[0])
visible = False
try:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        visible = b"cleanroom-victim" in f.read()
except OSError:
    pass
if visible:
    # Never go on to kill(-1) where host processes are visible: it could take the host down.
    escaped(f"host process {pid} is visible")
else:
    try:
        os.kill(pid, 9)  # in a PID namespace this number is some sandbox process, or none
    except OSError:
        pass
    try:
        os.kill(-1, 9)  # every process we may signal: only our own sandbox's
    except OSError:
        pass
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    if libc.ptrace(16, pid, None, None) == 0:  # PTRACE_ATTACH
        escaped(f"attached to host process {pid}")
""")

KERNEL_KNOBS = script("""
for path in ("/proc/sys/kernel/core_pattern", "/proc/sys/kernel/hostname",
             "/proc/sys/vm/drop_caches", "/proc/sysrq-trigger", "/proc/irq/default_smp_affinity",
             "/sys/kernel/uevent_helper", "/sys/fs/cgroup/memory/release_agent",
             "/sys/fs/cgroup/pids/cgroup.procs"):
    if not os.path.exists(path):
        continue
    try:
        fd = os.open(path, os.O_WRONLY)
        os.close(fd)
        escaped(f"opened {path} for writing")
    except OSError:
        pass
try:
    os.mknod("/tmp/disk", 0o600 | 0o060000, os.makedev(8, 0))
    escaped("created a block device node")
except OSError:
    pass
""")

PRIVILEGES = script("""
fields = {}
with open("/proc/self/status") as f:
    for line in f:
        key, _, value = line.partition(":")
        fields[key] = value.strip()
for key in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"):
    if int(fields[key], 16) != 0:
        escaped(f"{key} = {fields[key]}")
if fields.get("NoNewPrivs") != "1":
    escaped("no_new_privs is not set")
try:
    rc = subprocess.run(["unshare", "--user", "true"], capture_output=True).returncode
    if rc == 0:
        escaped("created a nested user namespace")
except OSError:
    pass
try:
    os.setuid(1000)
    os.setuid(0)
    escaped("changed uid back and forth")
except OSError:
    pass
""")

DAEMON_SOCKETS = script("""
found = []
for top in ("/run", "/var/run", "/run/cleanroom-docker", "/var/lib/docker"):
    for dirpath, dirnames, filenames in os.walk(top):
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                import stat
                if stat.S_ISSOCK(os.lstat(path).st_mode):
                    found.append(path)
            except OSError:
                pass
if found:
    escaped(f"daemon sockets visible: {found}")
for sock in ("/run/docker.sock", "/var/run/docker.sock", "/run/dbus/system_bus_socket"):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(sock)
        escaped(f"connected to {sock}")
    except OSError:
        pass
""")
