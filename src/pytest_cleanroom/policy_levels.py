"""The named policy levels as plain data, readable without pydantic.

:mod:`pytest_cleanroom.policy` builds its presets from these; the pytest plugin's start-up (option
choices, the report header) reads them here, so that it need not import pydantic.
"""

from __future__ import annotations

from typing import Any

LEVELS: tuple[str, ...] = ("permissive", "standard", "strict", "locked")

MiB = 1024 * 1024
GiB = 1024 * MiB

#: Wall-clock seconds of a command unless a level or policy says otherwise.
DEFAULT_TIMEOUT = 300.0
#: Bytes of stdout, and of stderr, a command may print unless a level says otherwise.
DEFAULT_MAX_OUTPUT = 64 * MiB
#: Bytes of memory of a command's whole tree unless a level says otherwise.
DEFAULT_MEMORY_LIMIT = 4 * GiB
#: Whether commands may create user namespaces of their own unless a level says otherwise.
DEFAULT_NESTED_USER_NAMESPACES = True

#: What each level changes from the :class:`~pytest_cleanroom.policy.Policy` defaults
#: (``standard`` is the defaults).
LEVEL_FIELDS: dict[str, dict[str, Any]] = {
    "permissive": {
        "hidden_paths": (),
        "isolate_pids": False,
        "network": "host",
        "timeout": 600.0,
        "memory_limit": None,
        "max_processes": None,
        "max_open_files": None,
        "max_file_size": None,
        "max_disk": None,
        "max_output": 128 * MiB,
        "env_allowlist": ("*",),
    },
    "standard": {},
    "strict": {
        "network": "isolated",
        "nested_user_namespaces": False,
        "unprivileged_user": True,
        "syscall_filter": "strict",
        "filesystem_view": "allow-list",
        "timeout": 120.0,
        "memory_limit": 2 * GiB,
        "max_processes": 512,
        "max_open_files": 2048,
        "max_file_size": 1 * GiB,
        "max_disk": 2 * GiB,
        "cpu_time_limit": 300.0,
        "max_output": 32 * MiB,
        "env_allowlist": (),
    },
    "locked": {
        "network": "isolated",
        "nested_user_namespaces": False,
        "unprivileged_user": True,
        "syscall_filter": "strict",
        "filesystem_view": "allow-list",
        "timeout": 60.0,
        "memory_limit": 1 * GiB,
        "max_processes": 256,
        "max_open_files": 1024,
        "max_file_size": 512 * MiB,
        "max_disk": 1 * GiB,
        "cpu_time_limit": 60.0,
        "max_output": 16 * MiB,
        "env_allowlist": (),
    },
}


def level_timeout(level: str) -> float | None:
    """The wall-clock timeout of the named level."""
    timeout: float | None = LEVEL_FIELDS[level].get("timeout", DEFAULT_TIMEOUT)
    return timeout


def level_tree_limits(level: str) -> list[str]:
    """The whole-tree limits (``memory_limit``, ``cpu_time_limit``) the named level sets."""
    defaults = {"memory_limit": DEFAULT_MEMORY_LIMIT, "cpu_time_limit": None}
    fields = LEVEL_FIELDS[level]
    return [name for name, default in defaults.items() if fields.get(name, default) is not None]


def level_nests_user_namespaces(level: str) -> bool:
    """Whether commands under the named level may create user namespaces."""
    return bool(LEVEL_FIELDS[level].get("nested_user_namespaces", DEFAULT_NESTED_USER_NAMESPACES))
