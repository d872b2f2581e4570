"""The ``bwrap`` backend: Linux namespaces through bubblewrap.

The command runs in new user, mount, IPC, UTS and cgroup namespaces (plus PID and network ones as
the policy says), as uid 0 of its user namespace with every capability dropped (bounding set
included), ``no_new_privs`` set, a new session (no terminal injection) and the seccomp filter of
:mod:`._seccomp`. Its user namespace maps only the invoking user, so it holds no privilege over
anything outside the sandbox.

In a PID namespace of its own, PID 1 of a sandbox built for the command (a cold start) is the
compiled set-up step in ``--init`` mode (``--as-pid-1``, run from a descriptor: see
``_nsinit.c``), which keeps its capabilities in the sandbox's user namespace while the command
runs, out of the command's reach, and forks the command's process, which applies the rlimits and
drops every capability. Without a compiled set-up step (no C compiler), bubblewrap's own init is
PID 1: it runs as the command's user without capabilities, and the command can reach it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..errors import BackendUnavailableError, SandboxError
from ..policy import Policy
from . import _seccomp, _warm, idmap
from ._handoff import HANDOFF_FD
from ._nsinit_native import FROM_FD, PROGRAM_FD, command_records
from ._nsinit_native import program as compiled_program
from .availability import BWRAP_MISSING, find_program, probe_bwrap
from .base import CommandSpec
from .local import ENTER_MARK, HOSTNAME, NamespaceBackend, exec_failure, single_line
from .namespace.filesystem import FsOp
from .namespace.limits import Rlimits
from .namespace.process_tree import Outcome

#: The descriptor bubblewrap reads the seccomp program from (the launcher opens it).
SECCOMP_FD = 9


class BwrapBackend(NamespaceBackend):
    """Runs each command under ``bwrap``; see the module docstring for what it isolates."""

    name = "bwrap"
    overhead_processes = 2  # bwrap's outer monitor and its PID-namespace init
    # Its monitor takes the exit status from its PID-namespace init through a descriptor and
    # never reaps it: the command's memory and CPU time do not reach the monitor's rusage.
    rusage_measures_command = False
    prepares = True
    warms = True  # see _warm.py: where it can, a command enters a sandbox kept warm

    def __init__(self, executable: str | None = None, *, warm: bool = True) -> None:
        super().__init__()
        self._warm_allowed = warm
        self._executable = executable

    @property
    def executable(self) -> str:
        path = self._executable or find_program("bwrap")
        if path is None:
            raise BackendUnavailableError(BWRAP_MISSING)
        return path

    def check(self, policy: Policy) -> None:
        problem = _seccomp.unsupported() or probe_bwrap(self.executable, disable_userns=False)
        if problem is None and not policy.nested_user_namespaces:
            problem = probe_bwrap(self.executable, disable_userns=True)
        as_user = self.check_unprivileged_user(policy)
        if problem is None and as_user:
            problem = probe_bwrap(
                self.executable, disable_userns=not policy.nested_user_namespaces, prefix=as_user
            )
        if problem is not None:
            raise BackendUnavailableError(problem)
        self.check_limits(policy)
        self.prepare_ahead()  # the first command need not wait for its launcher

    def sandbox_argv(
        self, spec: CommandSpec, ops: Sequence[FsOp], rlimits: Rlimits | None
    ) -> list[str]:
        init = self.init_program(spec.policy) is not None
        argv = self._namespaces(spec.policy, ops, own_init=init)
        argv += ["--chdir", spec.cwd, "--"]
        limits = rlimits.prlimit_args() if rlimits is not None else []
        if init:
            argv += [FROM_FD, "--init", f"--close={PROGRAM_FD}", *limits, "--"]
        elif limits:
            argv += ["prlimit", *limits, "--"]
        argv += spec.argv
        return argv

    @staticmethod
    def init_program(policy: Policy) -> str | None:
        """The compiled set-up step that is PID 1 of a cold sandbox under ``policy`` (``None``:
        bubblewrap's own init, where no C compiler built it, or no PID namespace of its own)."""
        return compiled_program()[0] if policy.isolate_pids else None

    def _namespaces(
        self,
        policy: Policy,
        ops: Sequence[FsOp],
        *,
        disable_userns: bool = True,
        own_init: bool = False,
    ) -> list[str]:
        """bwrap's options up to the command: namespaces, privileges, seccomp, filesystem.
        ``own_init``: the command is our PID 1 (``--init``), which keeps every capability in the
        sandbox's user namespace and drops them in the command's process."""
        caps = ["--as-pid-1", "--cap-add", "ALL"] if own_init else ["--cap-drop", "ALL"]
        argv = [
            self.executable, "--args", str(HANDOFF_FD),
            "--unshare-user", "--uid", "0", "--gid", "0",
            "--unshare-ipc", "--unshare-uts", "--hostname", HOSTNAME, "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", *caps,
        ]  # fmt: skip
        if policy.isolate_pids:
            argv.append("--unshare-pid")
        if policy.network == "isolated":
            argv.append("--unshare-net")
        if not policy.nested_user_namespaces and disable_userns:
            argv.append("--disable-userns")
        argv += ["--seccomp", str(SECCOMP_FD)]
        for op in ops:
            if op.target not in _COVERED_BY_BWRAP:
                argv += _render(op)
        return argv

    def warm_records(self, spec: CommandSpec, rlimits: Rlimits | None) -> _warm.Records | None:
        return [*self.enter_records(), *command_records(spec, rlimits)]

    def enter_records(self) -> _warm.Records:
        """Its binds are nosuid and nodev, as bubblewrap's are."""
        return [("bind_nosuid", ("1",))]

    #: A warm sandbox's binds are ``nosuid`` and ``nodev``, as bubblewrap's are.
    binds_nosuid = True

    def holder_launch(
        self, spec: CommandSpec, base: Sequence[FsOp], program: str
    ) -> tuple[list[str], bytes, dict[int, str]]:
        """bubblewrap building the warm sandbox's base; the holder is a ``cat`` waiting for its
        stdin to close (the compiled program is not in the sandbox's view). Without
        ``--disable-userns``: its nested user namespace would not own the mounts, and the kernel
        would lock ``/proc`` against a command's fresh one; a command entering the sandbox
        forbids nested user namespaces in the holder's instead (and the seccomp filter, here
        as everywhere, refuses to create any)."""
        holder = ["/bin/sh", "-c", "echo ready && exec cat >/dev/null"]
        namespaces = self._namespaces(spec.policy, base, disable_userns=False)
        # Started as the sandbox user where commands run as one: its user namespace maps that
        # user, and each command entering it becomes that user (see _nsinit.c).
        as_user = (
            self.as_sandbox_user() if idmap.runs_unprivileged(spec.policy.unprivileged_user) else []
        )
        argv = [*as_user, *namespaces, "--chdir", "/", "--", *holder]
        return argv, b"--clearenv\0", {SECCOMP_FD: _seccomp_file(spec.policy)}

    def fd_files(self, policy: Policy) -> dict[int, str]:
        files = {SECCOMP_FD: _seccomp_file(policy)}
        program = self.init_program(policy)
        if program is not None:
            files[PROGRAM_FD] = program
        return files

    def handoff(self, spec: CommandSpec, ops: Sequence[FsOp], rlimits: Rlimits | None) -> bytes:
        """bwrap sets the command's environment itself, from ``--args`` (NUL-separated)."""
        pairs = [part for key, value in spec.env.items() for part in ("--setenv", key, value)]
        return b"".join(os.fsencode(part) + b"\0" for part in ("--clearenv", *pairs))

    def translate_failure(self, spec: CommandSpec, outcome: Outcome) -> Outcome:
        line = single_line(outcome.stderr)
        if line is None or outcome.stdout:
            return outcome
        if outcome.exit_code == 125 and line.startswith(ENTER_MARK):
            raise SandboxError(f"the sandbox's init could not start the command: {line}")
        program = spec.argv[0]
        if outcome.exit_code == 1 and line.startswith("bwrap: "):
            prefix = f"bwrap: execvp {program}: "
            if line.startswith(prefix):
                reason = line[len(prefix) :]
                return exec_failure(
                    outcome, program, reason, not_found=reason == "No such file or directory"
                )
            raise SandboxError(f"bubblewrap could not set up the sandbox: {line}")
        if outcome.exit_code in (126, 127) and line.startswith(
            f"prlimit: failed to execute {program}: "
        ):
            reason = line.rsplit(": ", 1)[-1]
            return exec_failure(outcome, program, reason, not_found=outcome.exit_code == 127)
        return outcome


def _seccomp_file(policy: Policy) -> str:
    """The file bubblewrap reads the policy's seccomp program from (at :data:`SECCOMP_FD`)."""
    return _seccomp.program_file(
        policy.syscall_filter, forbid_namespaces=not policy.nested_user_namespaces
    )


# bwrap's --proc binds these read-only itself whenever the sandbox could write them (it tests
# write access to the directory). It skips /proc/sys, whose directory always refuses writes
# although its files do not: the plan's own bind covers that one.
_COVERED_BY_BWRAP = frozenset({"/proc/irq", "/proc/bus"})


def _render(op: FsOp) -> list[str]:
    kind, target = op.kind, op.target
    if kind in ("ro-bind", "bind", "symlink"):
        assert op.source is not None
        return [f"--{kind}", op.source, target]
    if kind == "dir":
        return ["--dir", target]
    if kind == "hide-dir":
        return ["--perms", "0555", "--tmpfs", target, "--remount-ro", target]
    if kind == "hide-file":
        return ["--ro-bind", "/dev/null", target]
    if kind == "tmpfs":
        size = ["--size", str(op.size)] if op.size else []
        return ["--perms", "1777", *size, "--tmpfs", target]
    if kind == "proc":
        return ["--proc", target]
    if kind == "dev":
        return ["--dev", target]
    if kind == "remount-ro":
        return ["--remount-ro", target]
    if kind == "mountpoint":
        assert op.source is not None
        return ["--dir", target] if os.path.isdir(op.source) else ["--ro-bind", "/dev/null", target]
    raise ValueError(f"unknown filesystem operation {kind!r}")
