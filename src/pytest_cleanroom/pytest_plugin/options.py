"""The cleanroom's command-line flags and ini keys, and the checks on their values.

This module runs on every pytest start: it imports only the standard library, pytest, and the
(dependency-free) backend registry.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Collection
from typing import TypeVar

import pytest

from ..backends.registry import BackendNames
from ..policy_levels import LEVELS

POLICY_CHOICES: tuple[str, ...] = LEVELS
#: Read from the registry when a name is checked or listed, not while pytest starts.
BACKEND_CHOICES: Collection[str] = BackendNames()
DEFAULT_POLICY = "standard"
DEFAULT_BACKEND = "auto"
DEFAULT_DURATIONS = 5
MAX_SEED = 2**32 - 1

MARKER = "cleanroom"
MARKER_HELP = (
    "cleanroom(policy=None, **fields): run this test's cleanroom under a stricter policy "
    "(a level name, a Policy, or single Policy fields such as timeout=5); it can tighten "
    "--cleanroom-policy but never weaken it."
)

T = TypeVar("T")


def parse_seed(text: str) -> int:
    """A seed is an integer from 0 to 2**32-1 (the range PYTHONHASHSEED accepts)."""
    try:
        value = int(text, 10)
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f"{value} is outside 0..{MAX_SEED}")
    return value


def parse_timeout(text: str) -> float:
    """A timeout is a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"{text!r} must be a positive, finite number of seconds")
    return value


def parse_durations(text: str) -> int:
    """How many slow commands the summary lists; 0 hides the list."""
    try:
        value = int(text, 10)
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None
    if value < 0:
        raise ValueError(f"{value} is negative (0 hides the list)")
    return value


def _argparse_type(parse: Callable[[str], T]) -> Callable[[str], T]:
    """Turn a parser's ValueError into argparse's usage error that names the flag."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__.removeprefix("parse_")
    return convert


def add_options(parser: pytest.Parser) -> None:
    """Register every flag in the ``cleanroom`` group, each with its ini key."""
    group = parser.getgroup("cleanroom", "hermetic sandboxed commands (pytest-cleanroom)")
    group.addoption(
        "--cleanroom-policy",
        choices=POLICY_CHOICES,
        default=None,
        help=f"Security policy of every sandboxed command; a test may tighten it with "
        f"@pytest.mark.cleanroom, never weaken it. Default: {DEFAULT_POLICY} "
        f"(ini: cleanroom_policy).",
    )
    group.addoption(
        "--cleanroom-backend",
        choices=BACKEND_CHOICES,
        default=None,
        help=f"Where commands run; 'auto' picks the best backend that honours the policy. "
        f"Default: {DEFAULT_BACKEND} (ini: cleanroom_backend).",
    )
    group.addoption(
        "--cleanroom-seed",
        type=_argparse_type(parse_seed),
        default=None,
        metavar="N",
        help="Seed given to every sandboxed command (replay a failure with the seed the header "
        "shows). Default: a random seed per run, the same on every xdist worker "
        "(ini: cleanroom_seed).",
    )
    group.addoption(
        "--cleanroom-timeout",
        type=_argparse_type(parse_timeout),
        default=None,
        metavar="SECONDS",
        help="Wall-clock limit of each sandboxed command. Default: the policy's "
        "(ini: cleanroom_timeout).",
    )
    group.addoption(
        "--cleanroom-readable-path",
        action="append",
        default=None,
        metavar="PATH",
        help="Let a host path the policy hides (or the private /tmp covers) through read-only, "
        "e.g. a toolchain under /home or /root; repeatable. Adds to the ini key "
        "cleanroom_readable_paths.",
    )
    group.addoption(
        "--cleanroom-durations",
        type=_argparse_type(parse_durations),
        default=None,
        metavar="N",
        help=f"Show the N slowest sandboxed commands in the summary; 0 hides that list; the "
        f"policy and seed lines stay. Default: {DEFAULT_DURATIONS} (ini: cleanroom_durations).",
    )
    group.addoption(
        "--cleanroom-per-process-limits",
        action="store_true",
        default=None,
        help="Where no cgroup can hold memory_limit and cpu_time_limit for a command's whole "
        "process tree (an unprivileged user without a delegated cgroup), hold them per process "
        "(rlimits) instead of refusing; results then name the policy <level>+per_process_limits "
        "(ini: cleanroom_per_process_limits).",
    )
    parser.addini(
        "cleanroom_policy", f"Default of --cleanroom-policy ({'|'.join(POLICY_CHOICES)})."
    )
    parser.addini(
        "cleanroom_backend",
        "Default of --cleanroom-backend (auto, local, or a registered backend's name).",
    )
    parser.addini("cleanroom_seed", "Default of --cleanroom-seed (integer).")
    parser.addini("cleanroom_timeout", "Default of --cleanroom-timeout (seconds).")
    parser.addini("cleanroom_durations", "Default of --cleanroom-durations (integer).")
    parser.addini(
        "cleanroom_per_process_limits",
        "Default of --cleanroom-per-process-limits (true/false).",
        type="bool",
        default=False,
    )
    parser.addini(
        "cleanroom_readable_paths",
        "Host paths let through read-only into every sandbox (one per line; relative to the "
        "ini file's directory).",
        type="linelist",
        default=[],
    )


def read_readable_paths(config: pytest.Config) -> tuple[str, ...]:
    """Absolute paths from ``cleanroom_readable_paths`` and every ``--cleanroom-readable-path``."""
    base = config.inipath.parent if config.inipath else config.rootpath
    paths: list[str] = []
    for text in config.getini("cleanroom_readable_paths"):
        paths.append(os.path.normpath(os.path.join(base, str(text))))
    for text in config.getoption("cleanroom_readable_path") or []:
        if not os.path.isabs(text):
            raise pytest.UsageError(f"--cleanroom-readable-path {text!r}: give an absolute path")
        paths.append(os.path.normpath(text))
    return tuple(sorted(set(paths)))


def read_per_process_limits(config: pytest.Config) -> tuple[bool, str]:
    """(value, source) of ``--cleanroom-per-process-limits`` / ``cleanroom_per_process_limits``."""
    if config.getoption("cleanroom_per_process_limits"):
        return True, "option"
    try:
        value = bool(config.getini("cleanroom_per_process_limits"))
    except (ValueError, TypeError, pytest.UsageError) as exc:  # pytest wraps a bad bool
        raise _ini_error(config, "cleanroom_per_process_limits", str(exc)) from None
    return value, "ini" if value else "default"


def _ini_text(config: pytest.Config, key: str) -> str | None:
    raw = config.getini(key)
    text = str(raw).strip() if raw is not None else ""
    return text or None


def _ini_error(config: pytest.Config, key: str, problem: str) -> pytest.UsageError:
    where = f" in {config.inipath}" if config.inipath else ""
    return pytest.UsageError(f"{key}{where}: {problem}")


def read_choice(
    config: pytest.Config, option: str, key: str, choices: Collection[str], default: str
) -> tuple[str, str]:
    """(value, source) of a choice option: the flag, else the ini key, else ``default``."""
    value = config.getoption(option)
    if value is not None:
        return str(value), "option"
    text = _ini_text(config, key)
    if text is None:
        return default, "default"
    if text not in choices:
        raise _ini_error(config, key, f"invalid choice {text!r} (choose from {', '.join(choices)})")
    return text, "ini"


def read_value(
    config: pytest.Config, option: str, key: str, parse: Callable[[str], T]
) -> tuple[T | None, str]:
    """(value, source) of a typed option: the flag, else the ini key, else ``None``."""
    value = config.getoption(option)
    if value is not None:
        return value, "option"  # argparse already parsed it
    text = _ini_text(config, key)
    if text is None:
        return None, "default"
    try:
        return parse(text), "ini"
    except ValueError as exc:
        raise _ini_error(config, key, str(exc)) from None
