"""The ``unshare`` backend's set-up step as a native program: ``_nsinit.c``, compiled once.

The set-up step runs once per command; as a Python script it costs an interpreter start (tens
of milliseconds of CPU). ``_nsinit.c`` does the same steps in the same order; it is compiled
with the machine's C compiler on first use (see :mod:`._nsinit_build`, whose ``program`` this
module passes on), under a name that carries the digest of its source and flags, so an edited
source is compiled anew. Where no compiler is found, or no cache can be made safe, the backend
keeps the Python step (same result). This module writes the plan the program reads.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence

from . import _seccomp
from ._nsinit_build import CFLAGS as CFLAGS
from ._nsinit_build import SOURCE as SOURCE
from ._nsinit_build import program as program
from .base import CommandSpec
from .namespace.limits import Rlimits

#: Where a launcher opens the program for a sandbox tool that runs it inside the sandbox (from
#: ``/proc/self/fd``: neither the sandbox's view nor, for the sandbox's unprivileged user, the
#: cache directory holds it).
PROGRAM_FD = 7
#: The path that runs it from there.
FROM_FD = f"/proc/self/fd/{PROGRAM_FD}"

#: Records of the program's plan: ``(tag, fields)``, see ``_nsinit.c``.
Records = list[tuple[str, Sequence[str]]]


def encode_plan(records: Sequence[tuple[str, Sequence[str]]]) -> bytes:
    """The plan in the program's format: each record ``TAG\\0COUNT\\0FIELD\\0...``."""
    parts: list[str] = []
    for tag, fields in records:
        parts += (tag, str(len(fields)), *fields)
    try:
        joined = "\0".join(parts)
    except TypeError:  # a field given as bytes: each part on its own
        return _encode_parts(records)
    if joined.count("\0") != len(parts) - 1:  # a NUL inside a part: say which
        return _encode_parts(records)
    return os.fsencode(joined) + b"\0" if parts else b""


def _encode_parts(records: Sequence[tuple[str, Sequence[str]]]) -> bytes:
    """:func:`encode_plan` part by part, naming the record of a part that holds a NUL."""
    out = bytearray()
    for tag, fields in records:
        for part in (tag, str(len(fields)), *fields):
            encoded = os.fsencode(part)
            if b"\0" in encoded:
                raise ValueError(f"a NUL byte in the set-up plan's {tag} record: {part!r}")
            out += encoded + b"\0"
    return bytes(out)


def env_fields(env: Mapping[str, str]) -> list[str]:
    """``KEY=VALUE`` strings of ``env``, as ``execve`` takes them."""
    return [f"{key}={value}" for key, value in env.items()]


def command_records(spec: CommandSpec, rlimits: Rlimits | None) -> Records:
    """The set-up program's records about the command itself: limits, seccomp, what to run."""
    return [
        *confinement_records(spec, rlimits),
        ("cwd", (spec.cwd,)),
        ("argv", spec.argv),
        ("env", env_fields(spec.env)),
    ]


def confinement_records(spec: CommandSpec, rlimits: Rlimits | None) -> Records:
    """The records of :func:`command_records` that confine the command (its rlimits and seccomp
    program): those of its policy. A plan entering a warm sandbox ahead of the next command
    names the last command's, which the command's process takes before its command comes
    (checked against the command's own: see ``confined_ahead`` in _nsinit.c)."""
    policy = spec.policy
    seccomp = _seccomp_hex(policy.syscall_filter, not policy.nested_user_namespaces)
    records: Records = []
    for name, soft, hard in rlimits.settings() if rlimits is not None else []:
        records.append(("rlimit", (name, str(soft), str(hard))))
    records.append(("seccomp", (seccomp,)))
    return records


@functools.cache
def _seccomp_hex(syscall_filter: str, forbid_namespaces: bool) -> str:
    """:func:`._seccomp.program` as the plan's text (the same for every command of a policy)."""
    return _seccomp.program(syscall_filter, forbid_namespaces=forbid_namespaces).hex()


def rlimit_values(rlimits: Rlimits | None) -> dict[str, int | list[int]]:
    """``rlimits`` by the names both set-up steps use (CPU time: ``[soft, hard]``)."""
    settings = rlimits.settings() if rlimits is not None else []
    return {name: soft if soft == hard else [soft, hard] for name, soft, hard in settings}
