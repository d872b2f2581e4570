"""The ``docker`` backend: one short-lived container per command, on a local Docker engine.

Each command runs in a fresh container of ``CLEANROOM_DOCKER_IMAGE`` (default
``cleanroom/bookworm:latest``, built by ``scripts/build-images.sh``; images are never pulled):

* filesystem: the image's root, read-only when the policy says so; a private ``/tmp`` and
  ``/dev/shm`` sharing one tmpfs of ``max_disk`` bytes (see :mod:`pytest_cleanroom.scratch`;
  where the engine cannot see this process's mounts, a tmpfs of half of it each); the
  workspace bound read-write at ``/workspace``; hidden paths covered by an empty read-only tmpfs
  (files by ``/dev/null``); ``readable_paths``/``writable_paths`` and service socket directories
  bound in from the host. Nothing else of the host's filesystem exists in the container.
  Policies whose paths cannot hold as the host's links are are refused as on the local
  backends (see :mod:`.namespace.path_links`).
* processes: docker-init (tini) as PID 1 of a private PID namespace (the host's when
  ``isolate_pids`` is off), every capability dropped, ``no-new-privileges``, Docker's default
  seccomp profile (which also refuses the kernel keyring and new namespaces) and, under
  ``syscall_filter="strict"``, the engine's own filter of :mod:`._seccomp` on top of it (installed
  by the image's ``python3`` before the command runs), running as the workspace's owner; under
  ``unprivileged_user``, a workspace owned by root is bound from an idmapped view
  (:mod:`.idmap`) and the command runs as the sandbox user (``65534:65534``).
* network: ``none`` (loopback only) for ``network="isolated"``; the host's network otherwise, as
  the local backends do.
* resources: memory (no swap) and task limits through the container's cgroups, open files, file
  size and per-process CPU time as rlimits, whole-tree CPU time and breaches watched through the
  cgroups while it runs; wall-clock timeout and breaches kill the container. Where the backend
  measures containers (see :class:`~pytest_cleanroom.containers.cgroups.ContainerCgroups`), a
  refused fork is also found after the container is gone, in the kernel's log
  (:class:`~pytest_cleanroom.containers.kernel_log.KernelLog`).
* environment: exactly ``spec.env``, given through the API (never on a command line: every local
  user can read those); ``env -u`` in the container removes Docker's own ``HOSTNAME`` and the
  image's variables.

The container is labelled with its owner (see :mod:`pytest_cleanroom.containers.ownership`) and
always removed; if the engine process is killed outright, its reaper
(:mod:`pytest_cleanroom.containers.reaper`) removes its containers at once, and what remains of
a process that died is swept the first time a process uses the backend.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..containers import reaper as container_reaper
from ..containers.cgroups import CgroupUsage, ContainerCgroups
from ..containers.engine import (
    ENGINE_SCRIPT,
    connect,
    docker_host,
    engine_shares_our_mounts,
    require_image,
    unix_socket_path,
)
from ..containers.errors import DockerEngineDownError
from ..containers.kernel_log import KernelLog
from ..containers.ownership import owner_labels, sweep_leftovers
from ..errors import BackendUnavailableError, SandboxError
from ..interpreter import container_program_hint
from ..policy import Policy
from ..result import RunResult
from ..scratch import SCRATCH_ROOT, Scratch, own_view, separate_tmpfs_size, shown_at
from . import _seccomp, idmap
from .base import (
    ENFORCED_BY_DOCKER,
    EXIT_NOT_EXECUTABLE,
    EXIT_NOT_FOUND,
    LIMIT_CPU_TIME,
    LIMIT_MEMORY,
    LIMIT_OUTPUT,
    LIMIT_PROCESSES,
    LIMIT_TIMEOUT,
    WORKSPACE_PATH,
    Backend,
    CappedStream,
    CommandSpec,
    not_executable_message,
    not_found_message,
    output_cut_message,
)
from .finish import finish_result
from .namespace.filesystem import check_paths

#: Environment variable naming the image commands run in.
IMAGE_ENV = "CLEANROOM_DOCKER_IMAGE"
DEFAULT_IMAGE = "cleanroom/bookworm:latest"
#: The container's host name (when it has a network namespace of its own).
HOSTNAME = "cleanroom"
#: Tasks of the backend itself in the container's cgroup: docker-init.
OVERHEAD_PROCESSES = 1
#: How often the limits of a running container are checked (seconds).
TICK = 0.02
#: Size of the empty read-only tmpfs that hides a directory.
_HIDE_SIZE = 4096
_ENV = "/usr/bin/env"
#: The image's Python, which installs the engine's seccomp filter under ``syscall_filter="strict"``.
_PYTHON = "/usr/bin/python3"
#: Variables Docker gives every container unless the configuration sets them.
_DOCKER_SETS = frozenset({"HOSTNAME", "HOME", "PATH", "TERM"})
#: The paths Docker makes read-only in every container unless told others.
_DOCKER_READ_ONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
#: Mount points the container needs, which a hidden path cannot cover.
_NEVER_HIDDEN = frozenset({"/", "/tmp", "/proc", "/dev", "/sys", WORKSPACE_PATH})


def _nothing_there(path: str, bound: set[str]) -> bool:
    """Whether the hidden ``path`` leads nowhere on the host (a dangling link, a link loop),
    or is missing in a directory bound from the host (``bound``): nothing to hide there, and
    no mount point to make in a read-only bind."""
    if os.path.exists(path):
        return False
    return os.path.lexists(path) or any(path.startswith(p.rstrip("/") + "/") for p in bound)


def _scratch_covers(mounts: list[Any]) -> list[str]:
    """Where the container must get an empty read-only directory over the engine's scratch
    root (the private ``/tmp`` of every command), shown by one of the binds ``mounts``
    (docker's binds are recursive); :class:`PolicyError` for a bind of something inside it."""
    if not os.path.isdir(SCRATCH_ROOT):
        return []
    covers = []
    for mount in mounts:
        source = str(mount["Source"])
        if own_view(source):
            continue  # the engine's view of a workspace or a mount
        at = shown_at(os.path.realpath(source), str(mount["Target"]), SCRATCH_ROOT)
        if at is not None:
            covers.append(at)
    return covers


@dataclass
class _Engine:
    """One connection per engine and process, shared by every DockerBackend instance."""

    client: Any
    info: dict[str, Any]
    #: The images known to be there, with the names of the variables each one sets.
    images: dict[str, frozenset[str]] = field(default_factory=dict)
    #: Whether the engine sees this process's mounts (a scratch tmpfs can be bound in).
    shares_mounts: bool = False


_engines: dict[str, _Engine] = {}
_engines_lock = threading.Lock()


def _engine(host: str) -> _Engine:
    with _engines_lock:
        engine = _engines.get(host)
        if engine is None:
            client = connect(host)
            try:
                info = client.info()
                sweep_leftovers(client, role="backend")
                container_reaper.ensure_started(host)
            except Exception:
                client.close()
                raise
            engine = _engines[host] = _Engine(client, info)
            engine.shares_mounts = engine_shares_our_mounts(host)
        return engine


class DockerBackend(Backend):
    """Runs each command in its own container; see the module docstring for what it isolates.

    ``host`` is the engine's ``unix://`` address (default: :meth:`default_host`), ``image`` the
    image commands run in (default: ``CLEANROOM_DOCKER_IMAGE``, else :data:`DEFAULT_IMAGE`). A
    subclass for another engine speaking the Docker API sets :attr:`name`,
    :attr:`engine_script` and :meth:`default_host`.
    """

    name = "docker"
    limits_enforced_by = (ENFORCED_BY_DOCKER,)
    #: The script that starts the engine, named in errors.
    engine_script = ENGINE_SCRIPT
    #: What the engine puts before a container's id to name its cgroups.
    container_cgroup_prefix = ""

    def __init__(self, *, host: str | None = None, image: str | None = None) -> None:
        self.image = image or os.environ.get(IMAGE_ENV, "").strip() or DEFAULT_IMAGE
        self.host = host or self.default_host()
        self._live: dict[str, _Run] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(image={self.image!r}, host={self.host!r})"

    def tune_container(self, host_config: dict[str, Any], policy: Policy) -> None:
        """Adjust a container's host configuration for this engine (Docker's needs nothing)."""

    @classmethod
    def default_host(cls) -> str:
        """The engine address used when none is given."""
        return docker_host()

    # -- checks ---------------------------------------------------------------------------------

    def _ready(self) -> _Engine:
        if unix_socket_path(self.host) is None:
            raise BackendUnavailableError(
                f"the {self.name} backend needs an engine on this machine (a unix:// address), "
                f"got {self.host}: the workspace is bind-mounted into each container"
            )
        engine = _engine(self.host)
        if self.image not in engine.images:
            require_image(engine.client, self.image)
            config = engine.client.api.inspect_image(self.image).get("Config") or {}
            names = frozenset(v.partition("=")[0] for v in config.get("Env") or [])
            engine.images[self.image] = names
        return engine

    def check(self, policy: Policy) -> None:
        """Raise BackendUnavailableError unless the engine answers, has the image and can
        enforce every limit of ``policy``."""
        info = self._ready().info
        if policy.syscall_filter == "strict" and _seccomp.unsupported() is not None:
            raise BackendUnavailableError(
                f"the {self.name} backend cannot apply syscall_filter='strict' of policy "
                f"{policy.name!r}: {_seccomp.unsupported()}"
            )
        if idmap.runs_unprivileged(policy.unprivileged_user) and not self._ready().shares_mounts:
            raise _no_view(policy)
        missing = []
        if policy.memory_limit is not None and info.get("MemoryLimit") is False:
            missing.append("memory limits (the memory cgroup)")
        if policy.max_processes is not None and info.get("PidsLimit") is False:
            missing.append("task limits (the pids cgroup)")
        if policy.cpu_quota is not None and info.get("CpuCfsQuota") is False:
            missing.append("CPU quotas (the cpu cgroup's CFS bandwidth)")
        if missing:
            raise BackendUnavailableError(
                f"the Docker engine at {self.host} cannot enforce {' and '.join(missing)} of "
                f"policy {policy.name!r}: enable the cgroup controllers for dockerd, or use a "
                "policy without these limits"
            )

    # -- running --------------------------------------------------------------------------------

    def run(self, spec: CommandSpec) -> RunResult:
        # Refused as on the local backends (its binds come from the host, links and all).
        check_paths(spec.policy)
        engine = self._ready()
        cgroups = ContainerCgroups.for_engine(engine.info, self.host)
        max_disk = spec.policy.max_disk
        scratch = Scratch.create(max_disk) if max_disk and engine.shares_mounts else None
        run = _Run(engine.client, spec, self.image, cgroups, engine.images[self.image], scratch)
        run.backend_name = self.name
        run.tune = self.tune_container
        run.enforcement = self.limits_enforced_by[0]
        if cgroups is not None:
            cgroups.own_prefix = self.container_cgroup_prefix
        try:
            try:
                run.view = self._view(spec, engine)
                if run.view is not None:
                    shown = idmap.views_of_mounts(spec.mounts)
                    run.mounts = tuple(mount for mount, _ in shown)
                    run.extra_views = [view for _, view in shown]
                run.create()
                with self._lock:
                    self._live[run.name] = run
                try:
                    run.execute()
                finally:
                    with self._lock:
                        self._live.pop(run.name, None)
            finally:
                run.cleanup()
        except Exception as exc:
            if not _lost_engine(exc):
                raise
            with _engines_lock:
                _engines.pop(self.host, None)
            raise DockerEngineDownError(
                f"the Docker engine at {self.host} stopped answering while running "
                f"{spec.argv[0]!r} ({exc}); start it again with `{self.engine_script} start`"
            ) from exc
        return run.result()

    def _view(self, spec: CommandSpec, engine: _Engine) -> idmap.IdmappedView | None:
        """The idmapped view of a root-owned workspace for a command that must not run as root
        (``None``: it runs as the workspace's owner, who is not root, or may run as root)."""
        if not spec.policy.unprivileged_user or spec.workspace.stat().st_uid != 0:
            return None
        if not (os.geteuid() == 0 and engine.shares_mounts):
            raise _no_view(spec.policy)
        return idmap.IdmappedView.create(spec.workspace)

    def cancel(self) -> None:
        """Kill every command this backend is running (any thread's); it stays usable."""
        with self._lock:
            live = list(self._live.values())
        for run in live:
            run.cancel()


class _Run:
    """One command in one container: create, attach, start, watch, collect, remove."""

    def __init__(
        self,
        client: Any,
        spec: CommandSpec,
        image: str,
        cgroups: ContainerCgroups | None,
        image_env: frozenset[str] = frozenset(),
        scratch: Scratch | None = None,
    ) -> None:
        self.client = client
        self.scratch = scratch
        self.disk_full = False
        #: The workspace's idmapped view: the command runs as the sandbox user.
        self.view: idmap.IdmappedView | None = None
        #: What is bound besides the workspace (views of ``spec.mounts`` under a view).
        self.mounts = spec.mounts
        self.extra_views: list[idmap.IdmappedView] = []
        self.image_env = image_env
        self.spec = spec
        self.image = image
        self.cgroups = cgroups
        self.name = f"cleanroom-{uuid.uuid4().hex[:16]}"
        self.backend_name = DockerBackend.name
        self.tune: Callable[[dict[str, Any], Policy], None] | None = None
        self.enforcement = ENFORCED_BY_DOCKER
        self.container_id: str | None = None
        self.out = CappedStream(spec.policy.max_output)
        self.err = CappedStream(spec.policy.max_output)
        self.kill_reason: str | None = None
        self.cancelled = threading.Event()
        self.exit_code = -1
        self.oom_killed = False
        self.started_at = 0.0
        self.duration = 0.0
        self._sock: Any = None
        self.usage: CgroupUsage | None = None
        self.kernel_log: KernelLog | None = None
        self.fork_refused = False

    # -- container configuration ----------------------------------------------------------------

    def _create_kwargs(self) -> dict[str, Any]:
        from docker.types import LogConfig, Ulimit
        from docker.types import Mount as DockerMount

        spec, policy = self.spec, self.spec.policy
        workspace = self.view.path if self.view is not None else spec.workspace
        mounts = [DockerMount(WORKSPACE_PATH, str(workspace), type="bind", read_only=False)]
        tmpfs: dict[str, str] = {}
        shm_size = None
        if self.scratch is not None:
            mounts.append(DockerMount("/dev/shm", str(self.scratch.shm), type="bind"))
            if policy.private_tmp:
                mounts.append(DockerMount("/tmp", str(self.scratch.tmp), type="bind"))
        else:
            shm_size = separate_tmpfs_size(policy.max_disk, private_tmp=policy.private_tmp)
            if policy.private_tmp:
                bound = shm_size or policy.memory_limit
                size = f",size={bound}" if bound else ""
                tmpfs["/tmp"] = f"rw,exec,nosuid,nodev,mode=1777{size}"
        readable = {os.path.normpath(p) for p in policy.readable_paths}
        from_host = readable | {os.path.normpath(p) for p in policy.writable_paths}
        for path in sorted({os.path.normpath(p) for p in policy.hidden_paths} - readable):
            if path in _NEVER_HIDDEN or path.startswith(WORKSPACE_PATH + "/"):
                continue
            if _nothing_there(path, from_host):
                continue
            if os.path.isfile(path):
                mounts.append(DockerMount(path, "/dev/null", type="bind", read_only=True))
            else:
                tmpfs[path] = f"ro,nosuid,nodev,noexec,mode=0555,size={_HIDE_SIZE}"
        for path in sorted(readable):
            if os.path.exists(path):
                mounts.append(DockerMount(path, path, type="bind", read_only=True))
        for path in sorted({os.path.normpath(p) for p in policy.writable_paths}):
            if os.path.exists(path):
                mounts.append(DockerMount(path, path, type="bind", read_only=False))
        for mount in self.mounts:
            mounts.append(
                DockerMount(
                    os.path.normpath(mount.destination),
                    str(mount.source),
                    type="bind",
                    read_only=not mount.writable,
                )
            )
        own = {str(self.scratch.tmp), str(self.scratch.shm)} if self.scratch is not None else set()
        for target in _scratch_covers([m for m in mounts if m["Source"] not in own]):
            tmpfs[target] = f"ro,nosuid,nodev,noexec,mode=0555,size={_HIDE_SIZE}"

        ulimits = []
        if policy.max_open_files is not None:
            n = policy.max_open_files
            ulimits.append(Ulimit(name="nofile", soft=n, hard=n))
        if policy.max_file_size is not None:
            n = policy.max_file_size
            ulimits.append(Ulimit(name="fsize", soft=n, hard=n))
        if policy.cpu_time_limit is not None:
            # Soft below hard: SIGXCPU first (reported as cpu_time), SIGKILL a second later.
            n = math.ceil(policy.cpu_time_limit)
            ulimits.append(Ulimit(name="cpu", soft=n, hard=n + 1))

        host_network = policy.network == "host"
        tasks = policy.max_processes + OVERHEAD_PROCESSES if policy.max_processes else None
        host_config = self.client.api.create_host_config(
            mounts=mounts,
            tmpfs=tmpfs,
            read_only=policy.read_only_root,
            network_mode="host" if host_network else "none",
            pid_mode=None if policy.isolate_pids else "host",
            ipc_mode="private",
            shm_size=shm_size,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges:true"] if policy.no_new_privileges else None,
            init=True,
            mem_limit=policy.memory_limit,
            memswap_limit=policy.memory_limit,
            pids_limit=tasks,
            nano_cpus=round(policy.cpu_quota * 1e9) if policy.cpu_quota is not None else None,
            ulimits=ulimits or None,
            log_config=LogConfig(type="none"),
            cgroup_parent=self.cgroups.parent if self.cgroups is not None else None,
        )
        # Docker's own read-only paths, and /dev: its tmpfs would take data beyond max_disk.
        host_config["ReadonlyPaths"] = [*_DOCKER_READ_ONLY, "/dev"]
        if self.tune is not None:
            self.tune(host_config, policy)
        env = dict(spec.env)
        entrypoint: list[str] = []
        docker_sets = _DOCKER_SETS | self.image_env
        if policy.syscall_filter == "strict":
            forbid = not policy.nested_user_namespaces
            entrypoint = _seccomp.installer_argv(_PYTHON, "strict", forbid_namespaces=forbid)
            docker_sets |= {"LC_CTYPE"}  # set by python3's locale coercion
        unset = sorted(docker_sets - env.keys())
        entrypoint += [_ENV, *(f"--unset={name}" for name in unset), "--"]
        return {
            "image": self.image,
            "entrypoint": entrypoint,
            "command": list(spec.argv),
            "environment": env,
            "user": self._user(),
            "working_dir": spec.cwd,
            "hostname": None if host_network else HOSTNAME,
            "labels": owner_labels(role="backend"),
            "name": self.name,
            "stdin_open": spec.stdin is not None,
            "host_config": host_config,
        }

    def _user(self) -> str:
        if self.view is not None:
            return f"{idmap.SANDBOX_UID}:{idmap.SANDBOX_GID}"
        st = self.spec.workspace.stat()
        return f"{st.st_uid}:{st.st_gid}"

    # -- lifecycle -------------------------------------------------------------------------------

    def create(self) -> None:
        import docker.errors

        program = self.spec.argv[0]
        if "=" in program:
            # `env` would take it for one more variable assignment.
            raise SandboxError(
                f"the {self.backend_name} backend cannot run a program whose name has '=': "
                f"{program!r}"
            )
        try:
            created = self.client.api.create_container(**self._create_kwargs())
        except docker.errors.APIError as exc:
            raise SandboxError(f"docker could not create the container: {_explain(exc)}") from exc
        self.container_id = str(created["Id"])
        if self.cgroups is not None:
            self.cgroups.container_id = self.container_id

    def execute(self) -> None:
        import docker.errors

        assert self.container_id is not None
        spec = self.spec
        params = {"stdout": 1, "stderr": 1, "stream": 1, "stdin": int(spec.stdin is not None)}
        self._sock = self.client.api.attach_socket(self.container_id, params=params)
        reader = threading.Thread(target=self._read, name=f"{self.name}-out", daemon=True)
        if self.cgroups is not None and spec.policy.max_processes is not None:
            self.kernel_log = KernelLog.open()
        t0 = time.monotonic()
        self.started_at = time.time()
        try:
            self.client.api.start(self.container_id)
        except docker.errors.APIError as exc:
            self._fail_start(exc)
        reader.start()
        if spec.stdin is not None:
            stdin = spec.stdin
            threading.Thread(target=self._feed, args=(stdin,), daemon=True).start()
        try:
            self._watch(reader, t0)
        except BaseException:
            self._kill("cancel")
            raise
        self.duration = time.monotonic() - t0
        status = self.client.api.wait(self.container_id)
        self.exit_code = int(status.get("StatusCode", -1))
        state = self.client.api.inspect_container(self.container_id)["State"]
        self.oom_killed = self.oom_killed or bool(state.get("OOMKilled"))

    def _fail_start(self, exc: Exception) -> None:
        text = _explain(exc)
        missing = "no such file" in text.lower() or "not found" in text.lower()
        if missing and f'"{_PYTHON}"' in text:
            raise BackendUnavailableError(
                f"the image {self.image!r} has no {_PYTHON}, which the {self.backend_name} "
                "backend needs to install the seccomp filter of syscall_filter='strict' (policy "
                f"{self.spec.policy.name!r}): use an image with python3 ({text})"
            ) from exc
        if missing and _ENV in text:
            raise BackendUnavailableError(
                f"the image {self.image!r} has no {_ENV}, which the {self.backend_name} backend "
                "needs to give the command exactly its environment: use an image with "
                f"coreutils ({text})"
            ) from exc
        raise SandboxError(f"docker could not start the container: {text}") from exc

    def _watch(self, reader: threading.Thread, t0: float) -> None:
        deadline = t0 + self.spec.timeout if self.spec.timeout is not None else None
        cpu_limit = self.spec.policy.cpu_time_limit
        while True:
            reader.join(TICK)
            if not reader.is_alive():
                # An OOM kill between the last tick and the end of the output is still counted
                # while the container's group exists (Podman removes it soon after).
                cgroups = self.cgroups
                if cgroups is not None and self.kill_reason is None and cgroups.oom_kills():
                    self.oom_killed = True
                return
            if self.cancelled.is_set():
                self._kill("cancel")
            elif self.kill_reason is None and (self.out.overflowed or self.err.overflowed):
                self._kill(LIMIT_OUTPUT)
            elif deadline is not None and time.monotonic() >= deadline:
                self._kill(LIMIT_TIMEOUT)
            elif self.cgroups is not None and self.kill_reason is None:
                if self.cgroups.oom_kills():
                    self._kill(LIMIT_MEMORY)
                elif self.cgroups.pids_max_hits():
                    self._kill(LIMIT_PROCESSES)
                elif cpu_limit is not None:
                    used = self.cgroups.cpu_time()
                    if used is not None and used > cpu_limit:
                        self._kill(LIMIT_CPU_TIME)

    def _kill(self, reason: str) -> None:
        import docker.errors

        if self.kill_reason is None:
            self.kill_reason = reason
        if self.container_id is None:
            return
        with contextlib.suppress(docker.errors.APIError):
            self.client.api.kill(self.container_id)

    def cancel(self) -> None:
        self.cancelled.set()
        self._kill("cancel")

    def _read(self) -> None:
        from docker.utils.socket import frames_iter

        sinks = {1: self.out, 2: self.err}
        with contextlib.suppress(OSError):
            for stream, data in frames_iter(self._sock, False):
                sinks.get(stream, self.err).add(data)

    def _feed(self, data: bytes) -> None:
        raw = _raw_socket(self._sock)
        with contextlib.suppress(OSError):
            raw.sendall(data)
        with contextlib.suppress(OSError):
            raw.shutdown(socket.SHUT_WR)

    def cleanup(self) -> None:
        import docker.errors

        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        if self.container_id is not None:
            for attempt in range(3):
                try:
                    self.client.api.remove_container(self.container_id, force=True, v=True)
                    break
                except docker.errors.NotFound:
                    break
                except docker.errors.APIError:
                    if attempt == 2:
                        raise
                    time.sleep(0.1)
        if self.scratch is not None:
            self.disk_full = self.scratch.full()
            self.scratch.release()
        for view in [self.view, *self.extra_views]:
            if view is not None:
                view.release()
        if self.cgroups is not None:
            self.usage = self.cgroups.usage()
            self.cgroups.remove()
        if self.kernel_log is not None:
            assert self.container_id is not None
            self.fork_refused = self.kernel_log.fork_refused_in(self.container_id)
            self.kernel_log.close()

    # -- result -----------------------------------------------------------------------------------

    def result(self) -> RunResult:
        policy = self.spec.policy
        usage = self.usage
        limit = self.kill_reason if self.kill_reason != "cancel" else None
        if limit is None and (self.out.overflowed or self.err.overflowed):
            limit = LIMIT_OUTPUT
        note = output_cut_message(policy.max_output) if limit == LIMIT_OUTPUT else b""
        stdout, stderr = self.out.take(), self.err.take(note)
        exit_code = self.exit_code
        if exit_code == 125 and stderr.startswith(_seccomp.INSTALLER_MARK.encode()):
            raise SandboxError(
                f"the {self.backend_name} backend could not install its seccomp filter: "
                + stderr.decode(errors="replace").strip()
            )
        exit_code, stderr = _translate_exec_failure(self.spec.argv[0], exit_code, stdout, stderr)
        if stderr == not_found_message(self.spec.argv[0]):
            hint = container_program_hint(self.spec.argv[0], self.backend_name, self.image)
            stderr += f"cleanroom: {hint}\n".encode() if hint else b""
        if limit is None and self.oom_killed:
            limit = LIMIT_MEMORY
        if limit is None and self.fork_refused:
            limit = LIMIT_PROCESSES
        return finish_result(
            self.spec,
            backend=self.backend_name,
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            duration=self.duration,
            started_at=self.started_at,
            limits_enforcement=self.enforcement,
            observed_limit=limit,
            timed_out=self.kill_reason == LIMIT_TIMEOUT,
            cancelled=self.cancelled.is_set(),
            disk_full=self.disk_full,
            peak_memory=usage.peak_memory if usage is not None else None,
            cpu_time=usage.cpu_time if usage is not None else None,
        )


def _no_view(policy: Policy) -> BackendUnavailableError:
    return BackendUnavailableError(
        f"the docker backend cannot run commands of policy {policy.name!r} as an unprivileged "
        "user in a workspace owned by root: that needs a root engine whose Docker engine sees "
        "its mounts (the workspace is shown to that user through an idmapped mount made "
        "here); run the tests as an unprivileged user, or set unprivileged_user=False"
    )


def _translate_exec_failure(
    program: str, exit_code: int, stdout: bytes, stderr: bytes
) -> tuple[int, bytes]:
    """``env``'s own "cannot run" report becomes the engine's 127/126 line."""
    if exit_code not in (EXIT_NOT_FOUND, EXIT_NOT_EXECUTABLE) or stdout:
        return exit_code, stderr
    text = stderr.decode(errors="replace")
    if text.count("\n") != 1 or not text.startswith(f"{_ENV}: "):
        return exit_code, stderr
    reason = text.rstrip("\n").rsplit(": ", 1)[-1]
    if exit_code == EXIT_NOT_FOUND:
        return exit_code, not_found_message(program)
    return exit_code, not_executable_message(program, reason)


def _lost_engine(exc: BaseException) -> bool:
    """Whether ``exc`` says the engine's socket stopped answering (not a refused request)."""
    from requests.exceptions import ConnectionError as RequestsConnectionError

    return isinstance(exc, RequestsConnectionError)


def _raw_socket(sock: Any) -> socket.socket:
    raw = getattr(sock, "_sock", sock)
    assert isinstance(raw, socket.socket)
    return raw


def _explain(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)
