"""Per-command cgroups on a cgroup v2 (unified) host: where they live and the v2 files they use.

:mod:`~pytest_cleanroom.cgroups` keeps one model of a command's groups for both versions; this
module holds what differs on a host whose only hierarchy is cgroup v2 (current Debian, Ubuntu,
Fedora, GitHub-hosted runners). As root, the engine's groups live in a ``pytest-cleanroom``
group at the root of the hierarchy: the root cgroup is the one group that may hold processes
and still hand controllers to its children (cgroup v2's no-internal-process rule), so neither the
engine's own group nor anyone else's processes are moved. ``memory`` and ``pids`` are enabled
through ``cgroup.subtree_control`` on the way down; each command's group sets ``memory.max``,
``memory.swap.max`` and ``pids.max``, and the command runs in a fresh child of it (the root of
its cgroup namespace), whose ``memory.peak`` and ``cpu.stat`` measure exactly that command.
``cgroup.kill`` ends the whole subtree at once.

An unprivileged engine, or root inside a container's cgroup namespace, uses a delegated subtree
instead (:func:`delegated_parent`): the one it runs in, or a systemd scope with ``Delegate=yes``
it asks the user's systemd for (:func:`start_delegated_scope`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

#: Controllers a command's group needs, enabled in ``cgroup.subtree_control`` above it.
CONTROLLERS = ("memory", "pids")


def is_unified_only(mounts: dict[str, tuple[str, str]], unified_key: str) -> bool:
    """True when cgroup v2 is mounted and no v1 hierarchy carries the memory controller."""
    return unified_key in mounts and "memory" not in mounts


def root_parent(mountpoint: str, mount_root: str, group_dir: str) -> tuple[Path | None, str]:
    """``(the engine's parent group, "")`` for root, or ``(None, why not)``.

    At the host's root cgroup (the one group that may keep processes while giving its children
    controllers) nothing is moved; inside a container's cgroup namespace, whose root is another
    group, the namespace's root is used as a delegated subtree (see :func:`delegated_parent`),
    which needs it writable.
    """
    top = Path(mountpoint)
    if mount_root != "/" or (top / "cgroup.freeze").exists():
        parent, why = delegated_parent(top, group_dir)
        if parent is None:
            return None, (
                "the cgroup v2 hierarchy visible here is not the host's root (inside a "
                f"container's cgroup namespace) and cannot be used: {why}; give the container a "
                "writable cgroup (Docker: --cgroupns=private with a writable /sys/fs/cgroup, "
                "Podman does so by default) or run the engine on the host"
            )
        return parent, ""
    missing = _missing_controllers(top)
    if missing:
        return None, f"the cgroup v2 controllers {', '.join(missing)} are not available"
    try:
        return _hand_down(top, group_dir), ""
    except OSError as exc:
        return None, f"cannot set up the cgroup v2 group {top / group_dir}: {exc}"


def _missing_controllers(group: Path) -> list[str]:
    available = set((group / "cgroup.controllers").read_text().split())
    return [c for c in CONTROLLERS if c not in available]


def _hand_down(top: Path, group_dir: str) -> Path:
    """Enable :data:`CONTROLLERS` below ``top`` and in its ``group_dir``, which is returned."""
    enable(top)
    parent = top / group_dir
    parent.mkdir(exist_ok=True)
    enable(parent)
    return parent


def enable(group: Path) -> None:
    """Hand :data:`CONTROLLERS` to the children of ``group`` (a no-op when already done)."""
    enabled = set((group / "cgroup.subtree_control").read_text().split())
    wanted = [c for c in CONTROLLERS if c not in enabled]
    if wanted:
        with open(group / "cgroup.subtree_control", "w") as f:
            f.write(" ".join(f"+{c}" for c in wanted))


def configure(
    group: Path,
    memory_limit: int | None,
    max_processes: int | None,
    cpu_quota: float | None = None,
    period_us: int = 100_000,
) -> None:
    """Set a command group's limits (``max`` for none); swap may not extend the memory limit;
    ``cpu.max`` holds ``cpu_quota`` periods' worth of CPU time per period."""
    _write(group / "memory.max", memory_limit if memory_limit is not None else "max")
    swap = group / "memory.swap.max"
    if swap.exists():
        _write(swap, 0 if memory_limit is not None else "max")
    _write(group / "pids.max", max_processes if max_processes else "max")
    if cpu_quota is not None:
        enable_cpu(group.parent)
        _write(group / "cpu.max", f"{max(1000, round(cpu_quota * period_us))} {period_us}")
    elif (group / "cpu.max").exists():
        _write(group / "cpu.max", f"max {period_us}")


#: The controller of CPU quotas: enabled above the engine's groups only when a policy asks for
#: one (the rest of the machine's groups are not touched otherwise).
CPU = "cpu"


def cpu_problem(parent: Path) -> str | None:
    """Why ``cpu.max`` cannot be set below ``parent`` (the engine's group); ``None`` if it can."""
    available = (parent / "cgroup.controllers").read_text().split()
    if CPU in available:
        return None
    top = parent.parent
    if CPU in (top / "cgroup.controllers").read_text().split():
        try:
            enable_cpu(parent)
            return None
        except OSError as exc:
            return f"cannot enable the cgroup v2 cpu controller above {parent}: {exc}"
    return "the cgroup v2 cpu controller is not available on this host"


def enable_cpu(parent: Path) -> None:
    """Hand the cpu controller down to ``parent``'s children (and to ``parent``)."""
    for group in (parent.parent, parent):
        if CPU not in (group / "cgroup.subtree_control").read_text().split():
            with open(group / "cgroup.subtree_control", "w") as f:
                f.write(f"+{CPU}")


def read(path: str | Path) -> str:
    """A cgroup file's text (read without a buffered file object: these are read often)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks).decode()
    finally:
        os.close(fd)


def counter(path: str | Path, key: str) -> int:
    """``key`` in a flat-keyed cgroup file (``memory.events``, ``pids.events``, ``cpu.stat``; v1's
    ``memory.oom_control`` too), 0 when the file or the key is missing."""
    try:
        text = read(path)
    except OSError:
        return 0
    return flat_key(text, key)


def flat_key(text: str, key: str) -> int:
    """``key`` in the text of a flat-keyed cgroup file, 0 when it is missing."""
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            with contextlib.suppress(ValueError):
                return int(value)
    return 0


def number(path: str | Path) -> int | None:
    """An integer file (``memory.peak``, ``memory.current``), or None when unreadable."""
    try:
        return int(read(path))
    except (OSError, ValueError):
        return None


def kill(group: Path) -> bool:
    """SIGKILL every task in ``group`` and below it at once; False without ``cgroup.kill``."""
    try:
        with open(group / "cgroup.kill", "w") as f:
            f.write("1")
        return True
    except OSError:
        return False


def _write(path: Path, value: object) -> None:
    with open(path, "w") as f:
        f.write(str(value))


#: Where the processes of a delegated cgroup go (cgroup v2's no-internal-process rule: a group
#: that hands controllers to its children may hold no processes itself).
ENGINE_LEAF = "pytest-cleanroom-engine"
#: How long to wait for systemd to move this process into the scope it asked for.
SCOPE_WAIT = 10.0


def delegated_parent(own: Path, group_dir: str) -> tuple[Path | None, str]:
    """``(the engine's parent group, "")`` in the delegated cgroup v2 subtree this process is in
    (a systemd unit with ``Delegate=yes``, a container's writable cgroup namespace), or
    ``(None, why not)``.

    The subtree's processes (the engine's, nobody else's: the subtree was delegated to it) move
    into a leaf :data:`ENGINE_LEAF` first, then ``memory`` and ``pids`` are handed down to
    ``group_dir``; a process already in such a leaf (an xdist worker of the engine that set it
    up) reuses the set-up above it.
    """
    top = own.parent if own.name == ENGINE_LEAF else own
    if not _writable(top):
        return None, f"the cgroup {top} of this process is not writable by uid {os.geteuid()}"
    missing = _missing_controllers(top)
    if missing:
        return None, (
            f"the cgroup v2 controllers {', '.join(missing)} are not delegated to {top} "
            "(systemd: Delegate=memory pids, or Delegate=yes)"
        )
    try:
        leaf = top / ENGINE_LEAF
        leaf.mkdir(exist_ok=True)
        for _ in range(100):  # processes may fork meanwhile: move until none is left
            pids = (top / "cgroup.procs").read_text().split()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, OSError):
                    _write(leaf / "cgroup.procs", pid)
        return _hand_down(top, group_dir), ""
    except OSError as exc:
        return None, f"cannot set up the delegated cgroup v2 group {top / group_dir}: {exc}"


def _writable(group: Path) -> bool:
    files = ("cgroup.procs", "cgroup.subtree_control")
    return os.access(group, os.W_OK) and all(os.access(group / f, os.W_OK) for f in files)


def _user_manager_addresses() -> list[str]:
    """Where the user's systemd answers: the session bus, else its own private socket (a
    machine without dbus-user-session still has that one)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.geteuid()}"
    found = (
        [os.environ["DBUS_SESSION_BUS_ADDRESS"]] if "DBUS_SESSION_BUS_ADDRESS" in os.environ else []
    )
    for socket in (f"{runtime}/bus", f"{runtime}/systemd/private"):
        if os.path.exists(socket) and f"unix:path={socket}" not in found:
            found.append(f"unix:path={socket}")
    return found


def start_delegated_scope(read_own: Callable[[], str]) -> str:
    """Ask the user's systemd for a scope with ``Delegate=yes`` holding this process (D-Bus
    ``StartTransientUnit``), and wait until it is in it; ``""`` when it is, else why not.
    ``read_own`` gives this process's cgroup path."""
    from ._systemd_scope import DBusError, start_scope

    addresses = _user_manager_addresses()
    if not addresses:
        return (
            f"no systemd user manager answers for uid {os.geteuid()} (no session bus, no "
            "$XDG_RUNTIME_DIR/systemd/private): log in, or loginctl enable-linger"
        )
    before = read_own()
    unit = f"pytest-cleanroom-{os.getpid()}-{secrets.token_hex(3)}.scope"
    errors: list[str] = []
    for address in addresses:
        try:
            start_scope(address, unit, os.getpid())
            break
        except DBusError as exc:
            errors.append(f"{address}: {exc}")
    else:
        return f"the user's systemd did not start a delegated scope ({'; '.join(errors)})"
    end = time.monotonic() + SCOPE_WAIT
    while time.monotonic() < end:
        if read_own() != before and read_own().endswith("/" + unit):
            return ""
        time.sleep(0.02)
    return f"systemd started {unit} but did not move this process into it"
