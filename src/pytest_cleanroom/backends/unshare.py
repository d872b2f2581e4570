"""The ``unshare`` backend: util-linux ``unshare`` plus a small in-namespace set-up step.

The fallback of ``local`` where bubblewrap is missing. ``unshare`` creates the user (the
invoking user mapped to uid 0), mount, IPC, UTS and cgroup namespaces, plus PID and network ones
as the policy says; the set-up step then builds the same filesystem as the ``bwrap`` backend
and, as PID 1 of the sandbox, keeps its capabilities there (out of the command's reach) while
the command's process, which it forks, gets a fresh session keyring, drops every capability,
sets ``no_new_privs``, installs the seccomp filter of :mod:`._seccomp` and runs the command
(see ``_nsinit.c``). The set-up step is
``_nsinit.c`` compiled once (see :mod:`._nsinit_native`), or :mod:`._nsinit` in Python where no
C compiler is found. Needs Linux 5.12 or later (``mount_setattr`` makes bind mounts read-only
recursively).

Under ``unprivileged_user`` a root engine starts ``unshare`` as the sandbox's unprivileged user
(see :mod:`.local`). The compiled set-up step is then run from a descriptor the launcher opened
(its cache directory is the engine user's only; the program closes that descriptor first); the
Python one, where nothing was compiled, runs on the first of this interpreter and the system's
``python3`` that user can start (standard library only, its plan a version-4 ``marshal`` dump
that every Python 3 reads), its script read from a descriptor likewise. A warm sandbox's holder
is started the same way, and each command entering it becomes that user (see ``_nsinit.c``).
"""

from __future__ import annotations

import marshal
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import BackendUnavailableError, SandboxError
from ..policy import Policy
from . import _nsinit_native, _seccomp, _warm, idmap
from ._handoff import HANDOFF_FD
from .availability import (
    SETPRIV_MISSING,
    UNSHARE_MISSING,
    find_program,
    kernel_at_least,
    probe_unshare,
)
from .base import CommandSpec
from .local import HOSTNAME, NamespaceBackend, single_line
from .namespace.filesystem import FsOp
from .namespace.limits import Rlimits
from .namespace.process_tree import Outcome

NSINIT = str(Path(__file__).with_name("_nsinit.py"))
#: Where the set-up step (its program, or its script for an interpreter) is opened for the
#: sandbox user.
NSINIT_FD = _nsinit_native.PROGRAM_FD
_FROM_FD = _nsinit_native.FROM_FD
_SYSTEM = "/usr/bin:/bin"
_MARK = "cleanroom-nsinit:"


class UnshareBackend(NamespaceBackend):
    """Runs each command under ``unshare`` and the in-namespace set-up step."""

    name = "unshare"
    overhead_processes = 2  # unshare itself and the set-up step, which stays as PID 1
    prepares = True
    warms = True  # see _warm.py: where it can, a command enters a sandbox kept warm

    def __init__(
        self,
        executable: str | None = None,
        python: str | None = None,
        *,
        native: bool = True,
        warm: bool = True,
    ) -> None:
        super().__init__()
        self._warm_allowed = warm
        self._executable = executable
        self.python = python or sys.executable
        self._native = native
        self._step: str | None = None  # the compiled set-up program once known ("" for Python)
        self._sandbox_python: str | None = None

    @property
    def setup_program(self) -> str | None:
        """The compiled set-up program this backend runs, or ``None`` for the Python step."""
        if self._step is None:
            path, _ = _nsinit_native.program() if self._native else (None, "")
            self._step = path or ""
        return self._step or None

    @property
    def executable(self) -> str:
        path = self._executable or find_program("unshare")
        if path is None:
            raise BackendUnavailableError(UNSHARE_MISSING)
        return path

    @property
    def setpriv(self) -> str:
        path = find_program("setpriv")
        if path is None:
            raise BackendUnavailableError(SETPRIV_MISSING)
        return path

    def check(self, policy: Policy) -> None:
        _ = self.setpriv  # raises BackendUnavailableError when missing
        problem = _seccomp.unsupported()
        if problem is not None:
            raise BackendUnavailableError(problem)
        if not kernel_at_least(5, 12):
            raise BackendUnavailableError(
                f"the unshare backend needs Linux 5.12 or later (this is {os.uname().release}); "
                "install bubblewrap to use the bwrap backend instead"
            )
        problem = probe_unshare(self.executable)
        as_user = self.check_unprivileged_user(policy)
        if problem is None and as_user:
            problem = probe_unshare(self.executable, prefix=as_user)
            no_program = self.setup_program is None
            if problem is None and no_program and self._sandbox_python is None:
                self._sandbox_python = _python_for([*as_user, *self._userns()], self.python)
        if problem is not None:
            raise BackendUnavailableError(problem)
        self.check_limits(policy)
        _ = self.setup_program  # compiled now (once per machine), not during the first command

    def sandbox_argv(
        self, spec: CommandSpec, ops: Sequence[FsOp], rlimits: Rlimits | None
    ) -> list[str]:
        unprivileged = idmap.runs_unprivileged(spec.policy.unprivileged_user)
        native = self.setup_program
        if native is not None:
            # As the sandbox user, from the descriptor: its cache directory is its owner's only.
            program = _FROM_FD if unprivileged else native
            return self.outer_argv(spec, [program, str(HANDOFF_FD)])
        if unprivileged:
            python = self._sandbox_python or _python_for(
                [*self.as_sandbox_user(), *self._userns()], self.python
            )
            self._sandbox_python = python
            tail = [python, "-S", "-I", _FROM_FD, str(HANDOFF_FD), str(NSINIT_FD)]
            return self.outer_argv(spec, tail)
        return self.outer_argv(spec, [self.python, "-S", "-I", NSINIT, str(HANDOFF_FD)])

    def outer_argv(self, spec: CommandSpec, tail: list[str]) -> list[str]:
        """``unshare`` creating the namespaces of ``spec``'s policy and running ``tail``."""
        policy = spec.policy
        # setpriv makes unshare die with the engine (as bwrap's --die-with-parent does); unshare
        # then kills the set-up step, whose end as PID 1 kills everything in the sandbox.
        argv = [
            self.setpriv, "--pdeathsig", "KILL", "--",
            self.executable, "--user", "--map-root-user", "--mount", "--propagation", "private",
            "--ipc", "--uts", "--cgroup", "--kill-child",
        ]  # fmt: skip
        if policy.isolate_pids:
            argv.append("--pid")
        if policy.network == "isolated":
            argv.append("--net")
        return [*argv, "--", *tail]

    def holder_launch(
        self, spec: CommandSpec, base: Sequence[FsOp], program: str
    ) -> tuple[list[str], bytes, dict[int, str]]:
        policy = spec.policy
        records: _warm.Records = [
            *_warm.op_records(base),
            ("hostname", (HOSTNAME,)),
            ("net", ("1" if policy.network == "isolated" else "0",)),
            ("nested", ("1" if policy.nested_user_namespaces else "0",)),
        ]
        if not idmap.runs_unprivileged(policy.unprivileged_user):
            argv = self.outer_argv(spec, [program, "--hold", str(HANDOFF_FD)])
            return argv, _nsinit_native.encode_plan(records), {}
        # Held by the sandbox user: the commands entering it become that user (see _nsinit.c).
        records.append(("close", (str(NSINIT_FD),)))
        argv = self.outer_argv(spec, [_FROM_FD, "--hold", str(HANDOFF_FD)])
        argv = [*self.as_sandbox_user(), *argv]
        return argv, _nsinit_native.encode_plan(records), {NSINIT_FD: program}

    def warm_records(self, spec: CommandSpec, rlimits: Rlimits | None) -> _warm.Records | None:
        """What a command entering a warm sandbox is told besides its fresh mounts."""
        if self.setup_program is None:
            return None
        return _nsinit_native.command_records(spec, rlimits)

    def fd_files(self, policy: Policy) -> dict[int, str]:
        if idmap.runs_unprivileged(policy.unprivileged_user):
            return {NSINIT_FD: self.setup_program or NSINIT}
        return {}

    def _userns(self) -> list[str]:
        return [self.executable, "--user", "--map-root-user", "--"]

    def handoff(self, spec: CommandSpec, ops: Sequence[FsOp], rlimits: Rlimits | None) -> bytes:
        """The set-up step's plan, environment included (``marshal`` for the Python step: see
        _nsinit.py; NUL-separated records for the compiled one: see _nsinit.c)."""
        policy = spec.policy
        unprivileged = idmap.runs_unprivileged(policy.unprivileged_user)
        if self.setup_program is not None:
            closing: _warm.Records = [("close", (str(NSINIT_FD),))] if unprivileged else []
            return _native_plan(spec, ops, rlimits, closing)
        plan = {
            "ops": [[op.kind, op.target, op.source, op.size] for op in ops],
            "cwd": spec.cwd,
            "hostname": HOSTNAME,
            "net": policy.network == "isolated",
            "nested_userns": policy.nested_user_namespaces,
            "rlimits": _nsinit_native.rlimit_values(rlimits),
            "seccomp": _seccomp.program(
                policy.syscall_filter, forbid_namespaces=not policy.nested_user_namespaces
            ),
            "argv": list(spec.argv),
            "env": dict(spec.env),
        }
        return marshal.dumps(plan, 4)

    def translate_failure(self, spec: CommandSpec, outcome: Outcome) -> Outcome:
        line = single_line(outcome.stderr)
        if outcome.exit_code == 125 and line is not None and line.startswith(_MARK):
            raise SandboxError(f"the unshare backend could not set up the sandbox: {line}")
        return outcome


def _python_for(as_user: list[str], python: str) -> str:
    """The first of ``python`` (its real path) and the system's ``python3`` that the sandbox
    user can start in its user namespace (``as_user`` gets there); :class:`BackendUnavailableError`
    naming both otherwise."""
    candidates = [os.path.realpath(python), *filter(None, [shutil.which("python3", path=_SYSTEM)])]
    for candidate in dict.fromkeys(candidates):
        argv = [*as_user, candidate, "-S", "-I", "-c", "pass"]
        done = subprocess.run(argv, capture_output=True, check=False, env={"PATH": _SYSTEM})
        if done.returncode == 0:
            return candidate
    raise BackendUnavailableError(
        f"the unshare backend runs its set-up step as the sandbox's unprivileged user under "
        f"unprivileged_user, and that user can start none of {', '.join(candidates)} (a "
        "directory on the way is not searchable by others): install the system's python3, "
        "or set unprivileged_user=False"
    )


def _native_plan(
    spec: CommandSpec, ops: Sequence[FsOp], rlimits: Rlimits | None, extra: _warm.Records
) -> bytes:
    policy = spec.policy
    records = [
        *extra,
        *_warm.op_records(ops),
        ("hostname", (HOSTNAME,)),
        ("net", ("1" if policy.network == "isolated" else "0",)),
        ("nested", ("1" if policy.nested_user_namespaces else "0",)),
        *_nsinit_native.command_records(spec, rlimits),
    ]
    return _nsinit_native.encode_plan(records)
