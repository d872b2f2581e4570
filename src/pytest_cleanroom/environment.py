"""The deterministic environment a sandboxed command starts with.

Modelled on Bazel's test encyclopedia: the host's variables are dropped except those the policy's
``env_allowlist`` names; a fixed set is always provided; the caller's ``env`` is layered on top.

Precedence, lowest first: host variables let through by ``'*'``, the fixed set, host variables
named explicitly in the allow-list, the cleanroom's ``env``, the run's ``env``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping

from .backends.base import WORKSPACE_PATH

#: The ``PATH`` every sandboxed command gets (the usual FHS directories, nothing from the host).
FIXED_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: 1980-01-01T00:00:00Z, the earliest time a ZIP archive can hold: a fixed, plausible build time.
SOURCE_DATE_EPOCH = "315532800"

#: ``HOME`` inside the sandbox, relative to the workspace (created before each run).
HOME_DIR = ".home"

#: Largest seed; ``PYTHONHASHSEED`` accepts 0..2**32-1, so seeds are drawn from that range.
MAX_SEED = 2**32 - 1

_LOCALE_PREFIXES = ("LC_",)
_LOCALE_NAMES = frozenset({"LANG", "LANGUAGE"})


def new_seed() -> int:
    """A random seed in ``0..MAX_SEED``."""
    return secrets.randbelow(MAX_SEED + 1)


def fixed_environment(seed: int, path: str = FIXED_PATH) -> dict[str, str]:
    """The variables every command gets, whatever the policy (``path``: see
    :func:`~pytest_cleanroom.interpreter.sandbox_path`)."""
    return {
        "PATH": path,
        "HOME": f"{WORKSPACE_PATH}/{HOME_DIR}",
        "TMPDIR": "/tmp",
        "TZ": "UTC",
        "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH,
        "PYTHONHASHSEED": str(seed % (MAX_SEED + 1)),
        "CLEANROOM_SEED": str(seed),
        "CLEANROOM_WORKSPACE": WORKSPACE_PATH,
    }


def _is_locale(name: str) -> bool:
    return name in _LOCALE_NAMES or name.startswith(_LOCALE_PREFIXES)


def build_environment(
    *,
    seed: int,
    allowlist: tuple[str, ...],
    layers: tuple[Mapping[str, str] | None, ...] = (),
    host: Mapping[str, str] | None = None,
    path: str = FIXED_PATH,
) -> dict[str, str]:
    """The final environment of one command.

    ``allowlist`` names host variables to keep (``'*'`` keeps every one except the locale and
    those of the fixed set); ``layers`` are applied in order on top (e.g. the cleanroom's ``env``
    then the run's ``env``). ``host`` defaults to ``os.environ``; ``path`` is the fixed ``PATH``.
    """
    host_env = os.environ if host is None else host
    fixed = fixed_environment(seed, path)
    env: dict[str, str] = {}
    if "*" in allowlist:
        env.update((k, v) for k, v in host_env.items() if k not in fixed and not _is_locale(k))
    env.update(fixed)
    for name in allowlist:
        if name != "*" and name in host_env:
            env[name] = host_env[name]
    for layer in layers:
        if layer:
            for key, value in layer.items():
                _check_variable(key, value)
                env[key] = value
    return env


def _check_variable(key: str, value: str) -> None:
    if not isinstance(key, str) or not isinstance(value, str):
        raise TypeError(f"environment variables must be str: got {key!r}={value!r}")
    if not key or "=" in key or "\0" in key or "\0" in value:
        raise ValueError(f"invalid environment variable {key!r}={value!r}")
