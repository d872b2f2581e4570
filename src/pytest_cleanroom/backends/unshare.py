"""The ``unshare`` backend: util-linux ``unshare`` plus a small in-namespace set-up step.

The fallback of ``local`` where bubblewrap is missing. ``unshare`` creates the user (the
invoking user mapped to uid 0), mount, IPC, UTS and cgroup namespaces, plus PID and network ones
as the policy says; the set-up step then builds the same filesystem as the ``bwrap`` backend,
gives the command a fresh session keyring, drops every capability, sets ``no_new_privs``,
installs the seccomp filter of :mod:`._seccomp` and runs the command. The set-up step is
``_nsinit.c`` compiled once (see :mod:`._nsinit_native`), or :mod:`._nsinit` in Python where no
C compiler is found. Needs Linux 5.12 or later (``mount_setattr`` makes bind mounts read-only
recursively).
"""

from __future__ import annotations

import marshal
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import BackendUnavailableError, SandboxError
from ..policy import Policy
from . import _nsinit_native, _seccomp, _warm
from ._handoff import HANDOFF_FD
from .availability import SETPRIV_MISSING, UNSHARE_MISSING, kernel_at_least, probe_unshare
from .base import CommandSpec
from .local import HOSTNAME, NamespaceBackend, single_line
from .namespace.filesystem import FsOp
from .namespace.limits import Rlimits
from .namespace.process_tree import Outcome

NSINIT = str(Path(__file__).with_name("_nsinit.py"))
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

    @property
    def setup_program(self) -> str | None:
        """The compiled set-up program this backend runs, or ``None`` for the Python step."""
        if self._step is None:
            path, _ = _nsinit_native.program() if self._native else (None, "")
            self._step = path or ""
        return self._step or None

    @property
    def executable(self) -> str:
        path = self._executable or shutil.which("unshare")
        if path is None:
            raise BackendUnavailableError(UNSHARE_MISSING)
        return path

    @property
    def setpriv(self) -> str:
        path = shutil.which("setpriv")
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
        if problem is not None:
            raise BackendUnavailableError(problem)
        self.check_limits(policy)
        _ = self.setup_program  # compiled now (once per machine), not during the first command

    def sandbox_argv(
        self, spec: CommandSpec, ops: Sequence[FsOp], rlimits: Rlimits | None
    ) -> list[str]:
        native = self.setup_program
        if native is not None:
            return self.outer_argv(spec, [native, str(HANDOFF_FD)])
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
        argv = self.outer_argv(spec, [program, "--hold", str(HANDOFF_FD)])
        return argv, _nsinit_native.encode_plan(records), {}

    def warm_records(self, spec: CommandSpec, rlimits: Rlimits | None) -> _warm.Records | None:
        """What a command entering a warm sandbox is told besides its fresh mounts."""
        if self.setup_program is None:
            return None
        return _nsinit_native.command_records(spec, rlimits)

    def handoff(self, spec: CommandSpec, ops: Sequence[FsOp], rlimits: Rlimits | None) -> bytes:
        """The set-up step's plan, environment included (``marshal`` for the Python step: see
        _nsinit.py; NUL-separated records for the compiled one: see _nsinit.c)."""
        if self.setup_program is not None:
            return _native_plan(spec, ops, rlimits)
        policy = spec.policy
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
        return marshal.dumps(plan)

    def translate_failure(self, spec: CommandSpec, outcome: Outcome) -> Outcome:
        line = single_line(outcome.stderr)
        if outcome.exit_code == 125 and line is not None and line.startswith(_MARK):
            raise SandboxError(f"the unshare backend could not set up the sandbox: {line}")
        return outcome


def _native_plan(spec: CommandSpec, ops: Sequence[FsOp], rlimits: Rlimits | None) -> bytes:
    policy = spec.policy
    records = [
        *_warm.op_records(ops),
        ("hostname", (HOSTNAME,)),
        ("net", ("1" if policy.network == "isolated" else "0",)),
        ("nested", ("1" if policy.nested_user_namespaces else "0",)),
        *_nsinit_native.command_records(spec, rlimits),
    ]
    return _nsinit_native.encode_plan(records)
