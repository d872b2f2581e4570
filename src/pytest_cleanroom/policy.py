"""Security policies: what a sandboxed command may see, reach and consume.

A :class:`Policy` is an immutable pydantic model. Four named levels (``permissive``, ``standard``,
``strict``, ``locked``) are presets; every field can also be set one by one. Policies can be
combined field by field with :meth:`Policy.tightened_by`, which never weakens anything: this is how
a test's marker is reconciled with ``--cleanroom-policy`` given on the command line.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import PolicyError
from .policy_levels import (
    DEFAULT_MAX_OUTPUT,
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_NESTED_USER_NAMESPACES,
    DEFAULT_TIMEOUT,
    LEVEL_FIELDS,
    LEVELS,
    GiB,
    MiB,
)

__all__ = ["LEVELS", "GiB", "MiB", "Policy"]

NetworkMode = Literal["host", "isolated"]
SyscallFilter = Literal["baseline", "strict"]
FilesystemView = Literal["deny-list", "allow-list"]

# Host paths that hold users' data, secrets or daemons' sockets: hidden (an empty read-only
# directory, or an unreadable file, in their place) unless a policy lets them through read-only.
# /run goes because unix sockets stay connectable through read-only mounts (docker.sock, D-Bus);
# the shadow files because the sandbox's user is the invoking user (root here) without privileges.
DEFAULT_HIDDEN: tuple[str, ...] = (
    "/root",
    "/home",
    "/run",
    "/var/lib",
    "/srv",
    "/mnt",
    "/media",
    "/lost+found",
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
)

# Host variables a ``standard`` run keeps; everything else is dropped.
STANDARD_ENV_ALLOW: tuple[str, ...] = ("TERM",)


#: ``{id(policy): (policy, its digest)}``: every result records its policy's digest.
_digests: dict[int, tuple[Policy, str]] = {}


class Policy(BaseModel):
    """Everything the engine enforces on one command. ``None`` for a limit means unlimited."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    name: str = Field("custom", description="Level the policy derives from, or 'custom'.")

    # filesystem
    read_only_root: bool = True
    private_tmp: bool = True
    filesystem_view: FilesystemView = Field(
        "deny-list",
        description="'deny-list': the host's root minus hidden_paths; 'allow-list': only what "
        "programs need (/usr, /bin, /sbin, /lib*, /etc minus what other users cannot read) "
        "plus readable_paths.",
    )
    hidden_paths: tuple[str, ...] = DEFAULT_HIDDEN
    interpreter_readable: bool = Field(
        True,
        description="Whether the Python running the engine (its venv and installation, "
        "wherever its links lead) is readable in the sandbox, and the venv's bin first on PATH.",
    )
    readable_paths: tuple[str, ...] = Field((), description="Hidden paths let through read-only.")
    writable_paths: tuple[str, ...] = Field((), description="Host paths bound read-write.")

    # processes
    isolate_pids: bool = True
    no_new_privileges: bool = True
    nested_user_namespaces: bool = Field(
        DEFAULT_NESTED_USER_NAMESPACES,
        description="Whether the command may create user namespaces of its own.",
    )
    unprivileged_user: bool = Field(
        False,
        description="File permissions checked as an unprivileged host user: a root engine "
        "runs the command as nobody (65534), the workspace shown as its own through an "
        "idmapped mount; any other engine as itself.",
    )
    syscall_filter: SyscallFilter = Field(
        "baseline",
        description="System calls refused: 'baseline' the kernel keyring, 'strict' also "
        "io_uring, bpf, ptrace, module loading and the like (see docs/policies.md).",
    )

    # network
    network: NetworkMode = "host"
    allowed_services: tuple[str, ...] = Field(
        ("*",),
        description="Services whose unix sockets are bound into the sandbox ('*': every "
        "service kind, third parties' included).",
    )

    # resources
    timeout: float | None = Field(DEFAULT_TIMEOUT, gt=0, description="Wall-clock seconds.")
    memory_limit: int | None = Field(
        DEFAULT_MEMORY_LIMIT, gt=0, description="Bytes, whole process tree."
    )
    max_processes: int | None = Field(1024, gt=0, description="Tasks alive at once.")
    max_open_files: int | None = Field(4096, gt=0)
    max_file_size: int | None = Field(8 * GiB, gt=0, description="Bytes, largest single file.")
    max_disk: int | None = Field(
        4 * GiB, gt=0, description="Bytes in the private /tmp and /dev/shm together."
    )
    cpu_time_limit: float | None = Field(None, gt=0, description="CPU seconds, whole tree.")
    per_process_limits: bool = Field(
        False,
        description="Whether memory_limit and cpu_time_limit held per process (rlimits), not "
        "for the whole tree: set by the engine when the caller opted in to that fallback.",
    )
    cpu_quota: float | None = Field(
        None,
        gt=0,
        le=1024,
        description="CPUs' worth of time the whole tree may use per scheduling period (0.5: half "
        "of one CPU, 2: two CPUs), enforced by the CFS bandwidth controller (cgroup cpu.max or "
        "cpu.cfs_quota_us, Docker's NanoCpus); a backend that cannot enforce it refuses.",
    )
    max_output: int | None = Field(
        DEFAULT_MAX_OUTPUT,
        gt=0,
        description="Bytes of stdout, and of stderr, kept on the host; past it the command ends.",
    )

    # environment
    env_allowlist: tuple[str, ...] = Field(
        STANDARD_ENV_ALLOW, description="Host variables passed through; '*' passes all."
    )

    @field_validator(
        "hidden_paths", "readable_paths", "writable_paths", "allowed_services", "env_allowlist"
    )
    @classmethod
    def _as_sorted_set(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # These fields are sets: stored sorted without duplicates, equal sets compare (and
        # digest) equal, whatever order they were written in.
        return tuple(sorted(set(value)))

    @field_validator("hidden_paths", "readable_paths", "writable_paths")
    @classmethod
    def _absolute(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        relative = [path for path in value if not path.startswith("/")]
        if relative:
            raise ValueError(
                f"host paths must be absolute ({relative[0]!r} is not): give the whole path from /"
            )
        return value

    @classmethod
    def level(cls, name: str) -> Policy:
        """The preset named ``name``; :class:`PolicyError` lists the valid names otherwise."""
        try:
            return _PRESETS[name]
        except KeyError:
            raise PolicyError(
                f"unknown cleanroom policy {name!r}: choose one of {', '.join(LEVELS)}"
            ) from None

    @classmethod
    def coerce(
        cls, value: Policy | str | dict[str, Any] | None, default: Policy | None = None
    ) -> Policy:
        """Accept a Policy, a level name, or a dict of fields (optionally with a ``level`` base)."""
        if value is None:
            return default if default is not None else cls.level("standard")
        if isinstance(value, Policy):
            return value
        if isinstance(value, str):
            return cls.level(value)
        dump = getattr(value, "model_dump", None)
        if callable(dump):
            # A Policy of another import of this module (pytester's in-process runs can leave
            # two): rebuild it from every field rather than from its name.
            try:
                return cls.model_validate(dump())
            except ValidationError as exc:
                raise invalid_policy(exc) from exc
        fields = dict(value)
        level = fields.pop("level", None)
        if level is None:
            name = fields.get("name", "standard")
            level = name if name in LEVELS else "standard"
        base = cls.level(str(level))
        try:
            return base.replace(**fields)
        except ValidationError as exc:
            raise invalid_policy(exc) from exc

    def replace(self, **changes: Any) -> Policy:
        """A copy with ``changes`` applied and validated.

        Unless ``changes`` names it, the copy's name is this one's followed by the fields whose
        value changed (``locked.replace(timeout=5)`` is ``locked+timeout``), so that policies
        told apart by their digest can be told apart by their name too.
        """
        data = self.model_dump()
        data.update(changes)
        try:
            new = Policy.model_validate(data)
        except ValidationError as exc:
            raise invalid_policy(exc) from exc
        if "name" in changes or self.name == "custom":
            return new
        parts = self.name.split("+")
        changed = sorted(
            field
            for field in changes
            if getattr(new, field) != getattr(self, field) and field not in parts[1:]
        )
        return new.model_copy(update={"name": "+".join([*parts, *changed])}) if changed else new

    def digest(self) -> str:
        """sha256 of the canonical JSON of every enforced field (the name is not enforced)."""
        known = _digests.get(id(self))
        if known is not None and known[0] is self:  # frozen: its digest never changes
            return known[1]
        data = self.model_dump(mode="json", exclude={"name"})
        blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        if len(_digests) >= 256:
            _digests.clear()
        _digests[id(self)] = (self, digest)
        return digest

    def tightened_by(self, other: Policy) -> Policy:
        """Field by field, the stricter of ``self`` and ``other``. Never weaker than either."""
        if other is self:
            return self
        a, b = self, other
        merged = Policy(
            name=a.name if a.name == b.name else f"{a.name}+{b.name}",
            read_only_root=a.read_only_root or b.read_only_root,
            private_tmp=a.private_tmp or b.private_tmp,
            filesystem_view=_narrower_view(a.filesystem_view, b.filesystem_view),
            hidden_paths=_union(a.hidden_paths, b.hidden_paths),
            interpreter_readable=a.interpreter_readable and b.interpreter_readable,
            readable_paths=_intersection(a.readable_paths, b.readable_paths),
            writable_paths=_intersection(a.writable_paths, b.writable_paths),
            isolate_pids=a.isolate_pids or b.isolate_pids,
            no_new_privileges=a.no_new_privileges or b.no_new_privileges,
            unprivileged_user=a.unprivileged_user or b.unprivileged_user,
            nested_user_namespaces=a.nested_user_namespaces and b.nested_user_namespaces,
            syscall_filter=_stricter_filter(a.syscall_filter, b.syscall_filter),
            network="isolated" if "isolated" in (a.network, b.network) else "host",
            allowed_services=_intersection_env(a.allowed_services, b.allowed_services),
            timeout=_min(a.timeout, b.timeout),
            memory_limit=_min(a.memory_limit, b.memory_limit),
            max_processes=_min(a.max_processes, b.max_processes),
            max_open_files=_min(a.max_open_files, b.max_open_files),
            max_file_size=_min(a.max_file_size, b.max_file_size),
            max_disk=_min(a.max_disk, b.max_disk),
            cpu_time_limit=_min(a.cpu_time_limit, b.cpu_time_limit),
            per_process_limits=a.per_process_limits and b.per_process_limits,
            cpu_quota=_min(a.cpu_quota, b.cpu_quota),
            max_output=_min(a.max_output, b.max_output),
            env_allowlist=_intersection_env(a.env_allowlist, b.env_allowlist),
        )
        if merged.digest() == a.digest():
            return a
        if merged.digest() == b.digest():
            return b
        return merged

    def is_at_least_as_strict_as(self, other: Policy) -> bool:
        """True when every field of ``self`` is as strict as ``other``'s or stricter."""
        return self.tightened_by(other).digest() == self.digest()

    def allows_service(self, name: str) -> bool:
        """Whether the service ``name`` (its socket, its variables) reaches this policy's
        commands."""
        return "*" in self.allowed_services or name in self.allowed_services

    def weakened_fields(self, baseline: Policy) -> list[str]:
        """Names of the fields in which ``self`` is weaker than ``baseline``."""
        tight = self.tightened_by(baseline)
        mine = self.model_dump(exclude={"name"})
        return [k for k, v in tight.model_dump(exclude={"name"}).items() if mine[k] != v]


def _union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(set(a) | set(b)))


def _intersection(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(set(a) & set(b)))


def _intersection_env(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    if "*" in a:
        return b
    if "*" in b:
        return a
    return _intersection(a, b)


def _narrower_view(a: FilesystemView, b: FilesystemView) -> FilesystemView:
    return "allow-list" if "allow-list" in (a, b) else "deny-list"


def _stricter_filter(a: SyscallFilter, b: SyscallFilter) -> SyscallFilter:
    return "strict" if "strict" in (a, b) else "baseline"


def _min(a: float | None, b: float | None) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


_PRESETS: dict[str, Policy] = {
    name: Policy(name=name, **fields) for name, fields in LEVEL_FIELDS.items()
}


def invalid_policy(exc: ValidationError) -> PolicyError:
    """``invalid policy field timeout=-1: Input should be greater than 0; ...``: every field
    pydantic refused, with its value or the field it was probably meant to be."""
    from .config_errors.pydantic_errors import problems_of

    problems = []
    for problem in problems_of(exc, Policy):
        if problem.kind == "unknown":
            problems.append(f"{problem.dotted}: not a policy field{problem.hint()}")
        elif problem.kind == "missing":
            problems.append(f"{problem.dotted}: missing")
        else:
            problems.append(f"{problem.dotted}={problem.value!r}: {problem.message}")
    return PolicyError("invalid policy field " + "; ".join(problems))
