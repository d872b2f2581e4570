"""What the namespace backends (``bwrap``, ``unshare``) share: limits, supervision, results.

A subclass only says how to turn a :class:`~.namespace.filesystem.FsOp` plan into a command
line (:meth:`NamespaceBackend.sandbox_argv`) and how its own failures read.

Under ``unprivileged_user`` a root engine starts the sandbox tool as the sandbox user
(:data:`~.idmap.SANDBOX_UID`, through ``setpriv``), cold or as a warm sandbox's
holder: its user namespace then maps that user, not root, so the command's file accesses are
checked as that user's on the host (a command entering a warm sandbox becomes that user too).
The workspace and service directories are bound from idmapped views (:mod:`.idmap`)
that show them as the user's own; a cold start binds what that user could not reach on the way
(the engine's Python under ``/root``) from plain views of it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from .. import cgroups
from ..errors import BackendUnavailableError, PolicyError, SandboxError, TreeLimitsError
from ..interpreter import missing_program_hint
from ..policy import Policy
from ..result import RunResult
from ..scratch import Scratch, private_mount_dir
from . import _nsinit_native, idmap
from ._handoff import HANDOFF_FD, Handoff
from ._warm import Entered, Records, WarmSandboxes, shared_warm_sandboxes
from .availability import SETPRIV_MISSING, find_program, kernel_at_least
from .base import (
    ENFORCED_BY_CGROUP1,
    ENFORCED_BY_CGROUP2,
    ENFORCED_BY_RLIMIT,
    EXIT_NOT_EXECUTABLE,
    EXIT_NOT_FOUND,
    Backend,
    CommandSpec,
    Mount,
    not_executable_message,
    not_found_message,
)
from .finish import finish_result
from .namespace import path_links
from .namespace.filesystem import KERNEL_OWN, FsOp, HostPart, is_visible, plan_and_host
from .namespace.launcher_server import Forkserver, forkserver
from .namespace.limits import Rlimits, per_process_fields, rlimits_for
from .namespace.prepared import Ahead, Prepared, Preparer
from .namespace.process_tree import (
    LAUNCHER_MARK,
    LiveProcess,
    Outcome,
    Started,
    launcher_argv,
    start,
    supervise,
    wait_for_launchers,
)

#: The sandbox's host name (its own UTS namespace), the same everywhere.
HOSTNAME = "cleanroom"

#: How long a command waits for the launcher being made for it (seconds): a test's first
#: command, most often (its cleanroom asked for one as it was made).
PREPARED_WAIT = 0.05

#: How the compiled set-up step's failures begin (see _nsinit.c).
ENTER_MARK = "cleanroom-nsinit:"


class NamespaceBackend(Backend):
    """Base of the Linux-namespace backends; subclasses set ``name`` and build the argv."""

    name = "local"
    can_bind_workspace = True
    reusable = True
    limits_enforced_by = (ENFORCED_BY_CGROUP2, ENFORCED_BY_CGROUP1, ENFORCED_BY_RLIMIT)
    #: Tasks of the backend itself inside the command's cgroup (added to ``max_processes``).
    overhead_processes = 2
    #: Whether, without cgroups, the sandbox tool's resource usage (``wait4``) includes the
    #: command's: peak memory and CPU time are measured that way, or not at all.
    rusage_measures_command = True

    def __init__(self) -> None:
        self._live: dict[LiveProcess, CommandSpec] = {}
        self._lock = threading.Lock()
        self._preparer: Preparer | None = Preparer() if self.prepares else None
        self._warm_allowed = self.warms

    # -- to implement ---------------------------------------------------------------------------

    def check(self, policy: Policy) -> None:
        raise NotImplementedError

    def sandbox_argv(
        self, spec: CommandSpec, ops: Sequence[FsOp], rlimits: Rlimits | None
    ) -> list[str]:
        """The command line running ``spec.argv`` in the sandbox. ``rlimits``, when given, must
        be applied inside the sandbox (no cgroups: the outer launcher cannot do it)."""
        raise NotImplementedError

    def translate_failure(self, spec: CommandSpec, outcome: Outcome) -> Outcome:
        """Turn the backend's own "cannot exec"/"cannot set up" reports into results/errors."""
        return outcome

    def handoff(self, spec: CommandSpec, ops: Sequence[FsOp], rlimits: Rlimits | None) -> bytes:
        """What the sandbox tool or set-up step reads at :data:`HANDOFF_FD` (the command's
        environment at least: it must reach nothing that runs in the host's namespaces)."""
        raise NotImplementedError

    def fd_files(self, policy: Policy) -> dict[int, str]:
        """Files the launcher opens for the sandbox tool, by descriptor number."""
        return {}

    #: Whether commands may start from launchers made ahead of time (see prepared.py).
    prepares = False
    #: Whether commands may enter a sandbox kept warm (see _warm.py).
    warms = False
    #: Whether the binds of a sandbox entered warm are ``nosuid`` and ``nodev``.
    binds_nosuid = False

    def holder_launch(
        self, spec: CommandSpec, base: Sequence[FsOp], program: str
    ) -> tuple[list[str], bytes, dict[int, str]]:
        """``(argv, handoff, descriptor files)`` building the filesystem ``base`` under
        ``spec``'s policy and running the compiled ``program`` there as a warm sandbox's
        holder (backends that keep warm sandboxes)."""
        raise NotImplementedError

    def warm_records(self, spec: CommandSpec, rlimits: Rlimits | None) -> Records | None:
        """The records telling a command entering a warm sandbox what to run (``None``: no
        warm start now)."""
        return None

    def enter_records(self) -> Records:
        """The records of :meth:`warm_records` that are not about the command itself."""
        return []

    def _take_prepared(self, limits: dict[str, Any], *, spare: bool = False) -> Prepared | None:
        """The launcher made ahead (``spare``: the one entered in no sandbox), its cgroups
        configured for ``limits``."""
        if self._preparer is None:
            return None
        preparer = self._preparer
        prepared = preparer.take_spare() if spare else preparer.take(wait=PREPARED_WAIT)
        if prepared is None:
            return None
        try:
            prepared.group.configure(
                limits["memory_limit"], limits["max_processes"], limits["cpu_quota"]
            )
        except OSError:
            prepared.discard()
            return None
        return prepared

    # -- shared ---------------------------------------------------------------------------------

    def check_limits(self, policy: Policy) -> None:
        """Without cgroups, limits fall back to rlimits; refuse what they cannot enforce, and
        whole-tree limits held per process only unless ``policy.per_process_limits`` says so."""
        problem = cgroups.cpu_quota_problem() if policy.cpu_quota is not None else None
        if problem is not None:
            raise BackendUnavailableError(
                f"the {self.name} backend cannot enforce cpu_quota={policy.cpu_quota:g} of "
                f"policy {policy.name!r}: {problem}; a CPU quota is the cgroup CPU bandwidth "
                "controller's (no rlimit bounds a share of the CPU): run as root with the cgroup "
                "'cpu' controller, use the docker backend, or set cpu_quota=None"
            )
        self.check_cgroup_confinement(policy)
        if cgroups.parents() is not None:
            return
        why = cgroups.why_unavailable()
        per_process = per_process_fields(policy)
        if per_process and not policy.per_process_limits:
            raise TreeLimitsError(tree_limits_message(self.name, policy, per_process, why))
        if policy.max_processes is not None and os.geteuid() == 0:
            raise BackendUnavailableError(
                f"the {self.name} backend cannot enforce max_processes={policy.max_processes} "
                f"of policy {policy.name!r} for root without cgroups ({why}): RLIMIT_NPROC does "
                "not bind uid 0; mount the cgroup v1 'pids' controller, run as an unprivileged "
                "user, or set max_processes=None"
            )
        needs_prlimit = self.name == "bwrap" and not rlimits_for(policy, cgroups=False).empty
        if needs_prlimit and find_program("prlimit") is None:
            raise BackendUnavailableError(
                f"the {self.name} backend cannot enforce the limits of policy {policy.name!r} "
                f"without cgroups ({why}): util-linux 'prlimit' is not on PATH; install "
                "util-linux or run as root with cgroup v1 controllers mounted"
            )

    def as_sandbox_user(self) -> list[str]:
        """The prefix that runs the sandbox tool as the sandbox user (a root engine only)."""
        setpriv = find_program("setpriv")
        if setpriv is None:
            raise BackendUnavailableError(SETPRIV_MISSING)
        uid, gid = idmap.SANDBOX_UID, idmap.SANDBOX_GID
        return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]

    def check_unprivileged_user(self, policy: Policy) -> list[str]:
        """Refuse ``unprivileged_user`` where it cannot be kept; the launch prefix it needs
        (empty: the engine is not root, so the command runs as the unprivileged invoking user)."""
        if not idmap.runs_unprivileged(policy.unprivileged_user):
            return []
        if not kernel_at_least(5, 12):
            raise BackendUnavailableError(
                f"the {self.name} backend cannot run commands of policy {policy.name!r} as an "
                f"unprivileged user: idmapped mounts need Linux 5.12 or later (this is "
                f"{os.uname().release}); run the tests as an unprivileged user, or set "
                "unprivileged_user=False"
            )
        return self.as_sandbox_user()

    def check_cgroup_confinement(self, policy: Policy) -> None:
        """A command allowed user namespaces of its own can mount cgroupfs; as root (the files
        of every cgroup belong to root) it must then be in a cgroup of its own in every
        hierarchy, or it could change its limits and any group on the host."""
        if not policy.nested_user_namespaces or os.geteuid() != 0:
            return
        if cgroups.parents() is None:
            problems = [cgroups.why_unavailable()]
        else:
            problems = cgroups.unconfined()
        if problems:
            raise BackendUnavailableError(
                f"the {self.name} backend cannot let commands of policy {policy.name!r} create "
                f"user namespaces as root here: they could mount cgroupfs and change any cgroup "
                f"({'; '.join(problems)}); set nested_user_namespaces=False (as strict and "
                "locked do), run as an unprivileged user, or mount and make writable every "
                "cgroup v1 hierarchy (and cgroup2) this process is in"
            )

    def run(self, spec: CommandSpec) -> RunResult:
        policy = spec.policy
        max_tasks = policy.max_processes
        limits: dict[str, Any] = {
            "memory_limit": policy.memory_limit,
            "max_processes": max_tasks + self.overhead_processes if max_tasks else None,
            "cpu_quota": policy.cpu_quota,
        }
        unprivileged = idmap.runs_unprivileged(policy.unprivileged_user)
        views: list[idmap.IdmappedView] = []
        # Only a command that may mount cgroupfs needs a group in every hierarchy.
        confine = policy.nested_user_namespaces
        owner = (idmap.SANDBOX_UID, idmap.SANDBOX_GID) if unprivileged else (0, 0)
        scratch_key = (policy.max_disk, owner) if policy.max_disk is not None else None
        prepared = self._take_prepared(limits)
        group = prepared.group if prepared is not None else cgroups.RunCgroup.create(**limits)
        scratch = None
        if scratch_key is not None:
            scratch = prepared.take_scratch(*scratch_key) if prepared is not None else None
            scratch = scratch or Scratch.create(*scratch_key)
        handoff: Handoff | None = None
        if group is not None and policy.nested_user_namespaces:
            group.expose()
        stack = contextlib.ExitStack()
        started: Started | None = None
        settled = False  # every process of the command is known gone
        try:
            # A sandbox entered ahead takes the workspace itself as it is now (see below).
            entering = prepared is not None and prepared.entered is not None and not spec.mounts
            workspace, mounts = spec.workspace, spec.mounts
            if unprivileged and not entering:
                workspace, mounts = _views(spec, prepared, views)
            try:
                ops, host = plan_and_host(policy, workspace, mounts, scratch)
            except (PolicyError, SandboxError) as exc:  # before anything started
                if prepared is not None:
                    prepared.discard()  # the launcher goes too, and its cgroups with it
                    group = None
                if isinstance(exc, SandboxError):
                    raise path_links.explained(policy, exc) from exc
                raise
            planned = ops
            if prepared is not None and prepared.entered is not None:
                claim = self._claiming(prepared, spec, ops, confine, host)
                passed = stack.enter_context(claim)
                if passed is not None:
                    rlimits = rlimits_for(policy, cgroups=True)  # set by the sandbox's init
                    rest = _nsinit_native.encode_plan(_nsinit_native.command_records(spec, rlimits))
                    handoff = prepared.take_handoff()  # closed once the command is done
                    started = self._launch_entered(prepared, rest, passed, unprivileged)
                if started is None:  # entered for another command, or gone: start afresh
                    if handoff is not None:  # closed once that launcher is gone
                        prepared.give_back_handoff(handoff)
                        handoff = None
                    assert self._preparer is not None  # it made the one taken
                    self._preparer.discard_later(prepared)
                    prepared = self._take_prepared(limits, spare=True)
                    group = prepared.group if prepared else cgroups.RunCgroup.create(**limits)
                    if group is not None and policy.nested_user_namespaces:
                        group.expose()
                    if scratch is not None and scratch_key is not None:
                        # That sandbox made its mount points there: this command gets another.
                        used, scratch = scratch, None
                        used.release()
                        scratch = prepared.take_scratch(*scratch_key) if prepared else None
                        scratch = scratch or Scratch.create(*scratch_key)
                    if unprivileged and not views:
                        workspace, mounts = _views(spec, prepared, views)
                    ops, host = plan_and_host(policy, workspace, mounts, scratch)
                    planned = ops
            rlimits = rlimits_for(policy, cgroups=group is not None)
            outer, inner = (rlimits, None) if group is not None else (Rlimits(), rlimits)
            entry = None
            if started is None:
                entry = stack.enter_context(self._warm_entry(spec, ops, inner, group is not None))
            warm = entry is not None or started is not None  # entered ahead, or now
            if entry is not None:  # the entering step clones its mounts as the engine
                argv, data = entry
                handoff = Handoff(data)
                fd_files = {HANDOFF_FD: handoff.path}
            elif started is None:
                if unprivileged:  # the sandbox tool binds them as the sandbox user
                    ops = idmap.stage_unreachable(ops, views)
                as_user = self.as_sandbox_user() if unprivileged else []  # cold starts only
                argv = [*as_user, *self.sandbox_argv(spec, ops, inner)]
                handoff = Handoff(self.handoff(spec, ops, inner))
                fd_files = {**self.fd_files(policy), HANDOFF_FD: handoff.path}
            if started is None and prepared is not None:
                joins_left = prepared.joins_left(confine=confine)
                started = prepared.launch(argv, outer, fd_files, joins_left)
                if started is None:  # the waiting shell is gone: start the plain way
                    prepared.discard()
                    group = cgroups.RunCgroup.create(**limits)
                    if group is not None and policy.nested_user_namespaces:
                        group.expose()  # as above: the command may change its knobs
            server = self._launcher_server() if started is None else None
            if server is not None:
                joins = group.join_files(confine=confine) if group is not None else []
                started = server.launch(argv, outer, fd_files, joins)
            if started is None:
                started = start(launcher_argv(argv, group, outer, fd_files, confine=confine))
            if self._preparer is not None:  # the next one is made while this command runs
                ahead = self._ahead(spec, limits, scratch_key, planned, host, scratch)
                self._preparer.request(ahead)
            outcome = supervise(
                started,
                stdin=spec.stdin,
                timeout=spec.timeout,
                cgroup=group,
                cpu_limit=policy.cpu_time_limit,
                max_output=policy.max_output,
                on_start=lambda live: self._started(live, spec),
                on_end=self._ended,
            )
            # Only a failed command's limit is looked for (see classify_limit).
            disk_full = scratch is not None and outcome.exit_code != 0 and scratch.full()
            settled = outcome.reported
            if group is None and not self.rusage_measures_command:
                outcome = dataclasses.replace(outcome, peak_memory=None, cpu_time=None)
        finally:
            stack.close()
            if handoff is not None:
                handoff.close()  # read by then: the launcher opened it before the command ran
            if scratch is not None:
                scratch.release()
            for view in views:
                view.release()
            if group is not None:
                group.release(started.proc.pid if started is not None else None, settled=settled)
            if self._preparer is not None:
                self._preparer.request()
        if outcome.exit_code == 125 and LAUNCHER_MARK in outcome.stderr:
            raise SandboxError(outcome.stderr.decode(errors="replace").strip())
        line = single_line(outcome.stderr)
        if warm and outcome.exit_code == 125 and line and line.startswith(ENTER_MARK):
            failed = SandboxError(
                f"the {self.name} backend could not enter its warm sandbox: {line}"
            )
            raise path_links.explained(policy, failed)
        try:
            outcome = self.translate_failure(spec, outcome)
        except SandboxError as exc:
            if unprivileged and "Permission denied" in str(exc):
                raise SandboxError(
                    f"{exc} (policy {policy.name!r} has unprivileged_user: its sandbox is set up "
                    f"as uid {idmap.SANDBOX_UID}, which must be able to reach every readable "
                    "and writable path and service directory: make their parent directories "
                    "searchable by others, or set unprivileged_user=False)"
                ) from exc
            explained = path_links.explained(policy, exc)
            if explained is not exc:
                raise explained from exc
            raise
        if outcome.exit_code == EXIT_NOT_FOUND:
            outcome = _explain_not_found(spec, outcome)
        return finish_result(
            spec,
            backend=self.name,
            exit_code=outcome.exit_code,
            stdout=outcome.stdout,
            stderr=outcome.stderr,
            duration=outcome.duration,
            started_at=outcome.started_at,
            observed_limit=outcome.limit_exceeded,
            timed_out=outcome.timed_out,
            cancelled=outcome.cancelled,
            disk_full=disk_full,
            peak_memory=outcome.peak_memory,
            cpu_time=outcome.cpu_time,
            limits_enforcement=_enforcement(group),
        )

    def _launch_entered(
        self, prepared: Prepared, rest: bytes, passed: Sequence[FsOp], unprivileged: bool
    ) -> Started | None:
        """Start the command in the sandbox ``prepared`` entered ahead: the rest of its plan
        (``rest``) and a private clone of each host tree of ``passed`` (its workspace), made
        now, so that it is the directory there is now (shown as the sandbox user's where the
        command runs as that user); ``None``: it cannot start there."""
        trees: list[int] = []
        try:
            for op in passed:
                assert op.source is not None  # a bind of the command's plan
                trees.append(
                    idmap.detached_tree(
                        Path(op.source),
                        idmapped=unprivileged,
                        read_only=op.kind == "ro-bind",
                        nosuid_nodev=self.binds_nosuid,
                    )
                )
            return prepared.launch_entered(rest, trees)
        except OSError:
            return None  # the plain path says why (a missing workspace, no idmapped mounts)
        finally:
            for tree in trees:
                os.close(tree)

    @property
    def warm_holders(self) -> list[int]:
        """Host PIDs of the processes keeping this backend's warm sandboxes (diagnostics)."""
        warm = self._warm_sandboxes()
        return warm.holders if warm is not None else []

    def _warm_sandboxes(self) -> WarmSandboxes | None:
        """The warm sandboxes this backend's commands may enter: shared by every backend of
        this kind and executable in the process (a holder keeps nothing of a command or a test,
        so a later cleanroom's first command starts warm too)."""
        if not self._warm_allowed:
            return None
        identity = (self.name, str(getattr(self, "_executable", None)))
        return shared_warm_sandboxes(identity, self.holder_launch)

    def _ahead(
        self,
        spec: CommandSpec,
        limits: dict[str, Any],
        scratch_key: tuple[int, tuple[int, int]] | None,
        ops: Sequence[FsOp],
        host: HostPart,
        scratch: Scratch | None,
    ) -> Ahead:
        """What to make ahead for the next command, assuming it is like ``spec`` (whose
        filesystem plan is ``ops``, made from ``host``, with ``scratch``): no scratch tmpfs
        where the plan shows where they are."""
        policy = spec.policy
        ahead_scratch = scratch_key if scratch_key and _scratch_out_of_sight(ops, host) else None
        enter = None
        if ahead_scratch or scratch_key is None:
            enter = self._enter_ahead(spec, ops, host, scratch)
        # A sandbox entered ahead is given the command's workspace as it starts: no view then.
        unprivileged = idmap.runs_unprivileged(policy.unprivileged_user)
        return Ahead(
            limits["memory_limit"],
            limits["max_processes"],
            policy.nested_user_namespaces,
            ahead_scratch,
            spec.workspace if unprivileged and enter is None else None,
            enter,
            policy,
        )

    def _enter_ahead(
        self, spec: CommandSpec, ops: Sequence[FsOp], host: HostPart, scratch: Scratch | None
    ) -> Callable[[Scratch | None], Entered | None] | None:
        """What makes the plan entering the warm sandbox of commands like ``spec`` ahead of
        the next one (see prepared.py), with its scratch tmpfs: ``spec``'s own plan ``ops``
        (made with ``scratch``) with the new scratch instead (the command's plan is compared
        with it as the command starts); ``None`` where it cannot be (no warm sandbox,
        services' directories bound per command)."""
        warm = self._warm_sandboxes()
        if warm is None or spec.mounts or not warm.eligible(spec, cgroups=True):
            return None
        if self.warm_records(spec, None) is None:
            return None
        # The confinement of commands like this one, taken ahead by the command's process.
        confinement = _nsinit_native.confinement_records(
            spec, rlimits_for(spec.policy, cgroups=True)
        )
        records = [*self.enter_records(), *confinement]
        swap = _scratch_sources(scratch)

        # Holds no reference to the backend (its preparer keeps this): a backend dropped
        # without close() is freed at once, and its launchers with it.
        def enter(made: Scratch | None) -> Entered | None:
            if (made is None) != (scratch is None):
                return None  # the command makes its own: this plan would not be its
            # The workspace is not part of what is entered (see _warm.passing).
            new = dict(zip(swap, _scratch_sources(made), strict=True))
            shown = [dataclasses.replace(op, source=new[op.source]) if op.source in new else op
                     for op in ops]  # fmt: skip
            return warm.prepare_entry(spec, shown, records, host)

        return enter

    @contextlib.contextmanager
    def _claiming(
        self,
        prepared: Prepared,
        spec: CommandSpec,
        ops: Sequence[FsOp],
        confine: bool,
        host: HostPart,
    ) -> Iterator[tuple[FsOp, ...] | None]:
        """The binds ``spec`` brings, if ``prepared`` entered the very sandbox ``spec`` needs
        now (see :meth:`.WarmSandboxes.claiming`), in every cgroup it must be in; else
        ``None``."""
        warm = self._warm_sandboxes()
        entered = prepared.entered
        if (
            warm is None
            or entered is None
            or prepared.joins_left(confine=confine)
            or not warm.eligible(spec, cgroups=True)
        ):
            yield None
            return
        with warm.claiming(entered, spec, ops, host) as usable:
            yield usable

    @contextlib.contextmanager
    def _warm_entry(
        self, spec: CommandSpec, ops: Sequence[FsOp], inner: Rlimits | None, cgroups: bool
    ) -> Iterator[tuple[list[str], bytes] | None]:
        warm = self._warm_sandboxes()
        records = self.warm_records(spec, inner) if warm is not None else None
        if warm is None or records is None or not warm.eligible(spec, cgroups):
            yield None
            return
        with warm.entering(spec, ops, records) as entry:
            yield entry

    def cancel(self) -> None:
        """Kill every command this backend is running (any thread's); it stays usable."""
        with self._lock:
            live = list(self._live)
        for process in live:
            process.cancel()

    def cancel_commands(self, specs: Collection[CommandSpec]) -> None:
        """Kill the running commands of ``specs`` only (another cleanroom's go on)."""
        wanted = {id(spec) for spec in specs}
        with self._lock:
            live = [process for process, spec in self._live.items() if id(spec) in wanted]
        for process in live:
            process.cancel()

    def prepare_ahead(self) -> None:
        """Start making a launcher now, so that even the first command starts warm."""
        if self._preparer is not None:
            self._preparer.request()

    def _launcher_server(self) -> Forkserver | None:
        """The launcher server forking this backend's launchers where none was made ahead (see
        launcher_server.py), or ``None``: they start the plain way."""
        return forkserver() if self.prepares else None

    def close(self) -> None:
        """Kill every command this backend is running (any thread's) and its spare launchers."""
        self.cancel()
        if self._preparer is not None:
            self._preparer.close()
        wait_for_launchers()
        cgroups.flush()

    def _started(self, live: LiveProcess, spec: CommandSpec) -> None:
        with self._lock:
            self._live[live] = spec

    def _ended(self, live: LiveProcess) -> None:
        with self._lock:
            self._live.pop(live, None)


def tree_limits_message(backend: str, policy: Policy, fields: list[str], why: str) -> str:
    """Why ``backend`` refuses ``policy`` without a cgroup, and the ways out."""
    shown = " and ".join(f"{name}={getattr(policy, name)!r}" for name in fields)
    return (
        f"the {backend} backend cannot hold {shown} of policy {policy.name!r} for the whole "
        f"process tree here: no cgroup for its commands ({why}); only per-process rlimits are "
        "possible, which a tree of processes can exceed together. Fix: give the engine a "
        "cgroup (root, or a systemd-delegated cgroup v2 subtree: see docs/platforms.md), use "
        "--cleanroom-backend=docker, or accept per-process limits with "
        "--cleanroom-per-process-limits (ini: cleanroom_per_process_limits = true; API: "
        f"per_process_limits=True), which records the policy as "
        f"'{policy.name}+per_process_limits'"
    )


def _views(
    spec: CommandSpec, prepared: Prepared | None, views: list[idmap.IdmappedView]
) -> tuple[Path, tuple[Mount, ...]]:
    """The workspace and mounts of ``spec`` as the sandbox user is shown them (idmapped
    views, added to ``views``; the workspace's made ahead with ``prepared``, if it fits)."""
    view = prepared.take_view(spec.workspace) if prepared is not None else None
    views.append(view or idmap.IdmappedView.create(spec.workspace))
    shown = idmap.views_of_mounts(spec.mounts)
    views += [view for _, view in shown]
    return views[0].path, tuple(mount for mount, _ in shown)


def _scratch_sources(scratch: Scratch | None) -> tuple[str, ...]:
    """The host directories a plan binds from ``scratch`` (at ``/tmp`` and ``/dev/shm``)."""
    return () if scratch is None else (str(scratch.tmp), str(scratch.shm))


def _scratch_out_of_sight(ops: Sequence[FsOp], host: HostPart) -> bool:
    """Whether no bind of the plan ``ops`` (made from ``host``) shows the host directory
    holding the scratch tmpfs (and so the one made ahead for the next command): a ``/tmp`` of
    the host's, a workspace, readable or writable path or mount at or above that directory (by
    any name) would. What ``host`` binds is looked at once for each reading of the host."""
    where = private_mount_dir()
    above = _above(str(where)) if where is not None else None
    if above is None:
        return False
    proven = _host_out_of_sight(host, above)
    below = f"{where}/"  # the engine's own mount points there (scratch tmpfs)
    for op in ops:
        source = op.source
        if op.kind not in ("bind", "ro-bind") or source is None or source in proven:
            continue
        if source in KERNEL_OWN or source.startswith(below):
            continue
        if _identity(source) in above:
            return False
    return True


def _identity(path: str) -> tuple[int, int] | None:
    """``(device, inode)`` of what ``path`` names (links followed), ``None`` if nothing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


#: ``{private directory: ((device, inode) of it, of it and each of its parents)}``.
_above_known: dict[str, tuple[tuple[int, int], frozenset[tuple[int, int]]]] = {}


def _above(where: str) -> frozenset[tuple[int, int]] | None:
    """``(device, inode)`` of the directory ``where`` and of each of its parents (``None``:
    one cannot be read); the parents are looked up again only if ``where`` is another
    directory than when they were."""
    itself = _identity(where)
    if itself is None:
        return None
    known = _above_known.get(where)
    if known is not None and known[0] == itself:
        return known[1]
    found = {itself}
    for parent in Path(where).parents:
        identity = _identity(str(parent))
        if identity is None:
            return None
        found.add(identity)
    _above_known[where] = (itself, frozenset(found))
    return _above_known[where][1]


#: ``{(host part, what is above the private directory): the host paths of its binds, if none
#: of them shows that directory}`` (see :func:`_host_out_of_sight`).
_sight_known: dict[tuple[HostPart, frozenset[tuple[int, int]]], frozenset[str]] = {}


def _host_out_of_sight(host: HostPart, above: frozenset[tuple[int, int]]) -> frozenset[str]:
    """The sources of ``host``'s binds, if none of them is in ``above``, looked at once per
    reading of the host (while later plans are given the same ``host``, the entries of every
    directory on the way to them are unchanged), else nothing: each is looked at again."""
    if not host.settled:
        return frozenset()
    key = (host, above)
    known = _sight_known.get(key)
    if known is None:
        shows = any(_identity(source) in above for source in host.bound)
        known = frozenset() if shows else host.bound
        if len(_sight_known) >= 64:
            _sight_known.clear()
        _sight_known[key] = known
    return known


def _enforcement(group: cgroups.RunCgroup | None) -> str:
    """What enforced the limits of a command that ran in ``group`` (``None``: rlimits)."""
    if group is None:
        return ENFORCED_BY_RLIMIT
    return ENFORCED_BY_CGROUP2 if set(group.dirs) == {cgroups.UNIFIED} else ENFORCED_BY_CGROUP1


def _explain_not_found(spec: CommandSpec, outcome: Outcome) -> Outcome:
    """Add why a program the host has was not found in the sandbox (hidden, not on PATH)."""
    program = spec.argv[0]
    if outcome.stderr != not_found_message(program):
        return outcome
    hint = missing_program_hint(
        program,
        lambda path: is_visible(spec.policy, path),
        spec.env.get("PATH", ""),
    )
    if hint is None:
        return outcome
    return dataclasses.replace(outcome, stderr=outcome.stderr + f"cleanroom: {hint}\n".encode())


def exec_failure(outcome: Outcome, program: str, errno_text: str, *, not_found: bool) -> Outcome:
    """An outcome saying ``program`` could not be executed (127 not found, 126 otherwise)."""
    code = EXIT_NOT_FOUND if not_found else EXIT_NOT_EXECUTABLE
    message = (
        not_found_message(program) if not_found else not_executable_message(program, errno_text)
    )
    return Outcome(
        exit_code=code,
        stdout=outcome.stdout,
        stderr=message,
        duration=outcome.duration,
        started_at=outcome.started_at,
        timed_out=outcome.timed_out,
        limit_exceeded=outcome.limit_exceeded,
        peak_memory=outcome.peak_memory,
        cpu_time=outcome.cpu_time,
        cancelled=outcome.cancelled,
    )


def single_line(data: bytes) -> str | None:
    """``data`` as text if it is exactly one newline-terminated line, else ``None``."""
    if not data.endswith(b"\n") or data.count(b"\n") != 1:
        return None
    return data[:-1].decode(errors="replace")
