"""The cache-hit manifest: what ``ggen lifecycle run PHASE`` leaves for answering it again fast.

A run whose every task was cached (or stored its outputs in the cache) writes
``.ggen/hits/run-<phase>.json``: what the run derived from its configuration (each task's
commands, declared environment, directory, input and output globs, dependencies, in the order the
run finished them) and fingerprints of everything that derivation depended on: the make.toml
files, the environment, the workspace directories and this tool's own code.
:mod:`ggen_lifecycle.fast_hit` answers the same command line from it without loading make.toml,
as long as every fingerprint still matches; the tasks' keys are never taken from it but computed
again from the input files, as the runner computes them.

This module is imported by the fast path: it uses the standard library only (the writer,
:func:`record`, imports what it needs when a run is over).
"""

from __future__ import annotations

import os
import sys

from . import _jsonc
from ._digest import sha256

TYPE_CHECKING = False  # typing itself is not imported: the fast path loads this module
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from .config import Project
    from .results import RunOptions, RunSummary

FORMAT = 1
#: Variables that differ between two runs of the same command in the same shell, and that no
#: task sees through the runner (``GGEN_LIFECYCLE_FAST`` only switches the fast path off).
IGNORED_ENV = frozenset({"OLDPWD", "_", "GGEN_LIFECYCLE_FAST"})
#: Packages whose code decides what a run does (their files' sizes and times are fingerprinted).
_PACKAGES = ("ggen_lifecycle", "pytest_cleanroom")


def manifest_path(state_dir: str, phase: str) -> str:
    """Where the manifest of ``run PHASE`` lives under ``state_dir`` (``.ggen``)."""
    return os.path.join(state_dir, "hits", f"run-{phase.encode().hex()}.json")


def env_digest(env: Mapping[str, str]) -> str:
    """sha256 of the environment, except :data:`IGNORED_ENV`."""
    h = sha256()
    for name in sorted(env):
        if name not in IGNORED_ENV:
            h.update(f"{name}\0{env[name]}\0".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def tool_digest() -> str:
    """sha256 of the interpreter's version and path, and the name, size and modification time of
    every source file of the packages that run a task (a changed or reinstalled tool gives
    another digest)."""
    here = os.path.dirname(os.path.abspath(__file__))
    h = sha256(f"{sys.version}\0{sys.executable}\0".encode())
    directories = [here, *(os.path.join(os.path.dirname(here), p) for p in _PACKAGES[1:])]
    with os.scandir(here) as entries:
        subpackages = [e.path for e in entries if e.is_dir() and not e.name.startswith("__")]
    for directory in sorted(directories + subpackages):
        with os.scandir(directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.name.endswith(".py"):
                    info = entry.stat()
                    h.update(f"{entry.path}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return h.hexdigest()


def file_digest(path: str) -> str | None:
    """sha256 of the regular file at ``path``; ``None`` when there is none, ``"unreadable"``
    when it cannot be read."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as handle:
            return sha256(handle.read()).hexdigest()
    except OSError:
        return "unreadable"


def read(path: str) -> dict[str, Any] | None:
    """The manifest at ``path`` if it is one this version wrote, else ``None``."""
    try:
        with open(path, "rb") as handle:
            data = _jsonc.loads(handle.read().decode())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    return data


# -- writing (by the full path, once a run is over) ------------------------------------------------


def record(project: Project, command: str, options: RunOptions, summary: RunSummary) -> None:
    """Write (or remove) the manifest of ``run PHASE`` after ``summary``'s run of ``command``
    (``run`` or ``pipeline``) with ``options``.

    It is written only for a run the fast path could repeat exactly: one phase, no
    environment, workspace filter or ``--no-cache``, no hooks, no deploy gate, no remote cache,
    no warnings, and every task cached with its entry in the local cache now.
    """
    if command != "run" or len(summary.phases) != 1:
        return
    phase = summary.phases[0]
    path = manifest_path(str(project.state_dir), phase)
    data = _manifest(project, phase, options, summary)
    from .state import atomic_write

    if data is None:
        if os.path.lexists(path):
            os.unlink(path)
        return
    atomic_write(project.state_dir / "hits" / os.path.basename(path), _jsonc.dumps(data))


def _repeatable(project: Project, options: RunOptions, summary: RunSummary) -> bool:
    plain_options = not (options.environment or options.workspace or options.no_cache)
    if (
        not plain_options
        or options.validation_gate
        or project.hooks()
        or project.spec.validation
        or project.warnings
    ):
        return False
    if project.spec.cache.remote.url or os.environ.get("TURBO_API"):
        return False
    if summary.status != "success" or summary.warnings:
        return False
    return bool(summary.results) and all(
        r.kind == "task" and r.status in ("success", "cached") and r.cache in ("hit", "miss")
        for r in summary.results
    )


def _manifest(
    project: Project, phase: str, options: RunOptions, summary: RunSummary
) -> dict[str, Any] | None:
    if not _repeatable(project, options, summary):
        return None
    from .cache import LocalCache
    from .cache.key import input_patterns, key_cwd, task_key
    from .graph import build_graph

    nodes = {n.id: n for n in build_graph(project, [phase])}
    cache = LocalCache(project.state_dir / "cache", project.spec.cache.max_bytes)
    keys: dict[str, str] = {}
    tasks = []
    for result in summary.results:
        node = nodes.get(result.id)
        if node is None or node.spec is None or not node.spec.cache_enabled:
            return None
        key = task_key(node, project.root, [keys.get(d, "") for d in node.deps])
        if key != result.cache_key or cache.peek(key) is None:
            return None  # an input changed during the run, or the entry is gone
        keys[node.id] = key
        tasks.append(
            {
                "id": node.id,
                "label": node.label,
                "phase": node.phase,
                "workspace": node.workspace,
                "cwd": str(node.cwd),
                "key_cwd": key_cwd(node, project.root),
                "commands": list(node.commands),
                "env": dict(node.env),
                "inputs": input_patterns(node),
                "outputs": list(node.spec.outputs),
                "deps": list(node.deps),
            }
        )
    return {
        "format": FORMAT,
        "tool": tool_digest(),
        "env": env_digest(os.environ),
        "root": str(project.root),
        "project": project.name,
        "config": _config_files(project),
        "max_bytes": project.spec.cache.max_bytes,
        "tasks": tasks,
    }


def _config_files(project: Project) -> dict[str, str | None]:
    """Every make.toml the project's loading read or looked for, with its digest (``None``:
    absent); each workspace directory is listed as ``DIR/`` (present: ``"dir"``)."""
    found: dict[str, str | None] = {str(project.file): file_digest(str(project.file))}
    for name in project.workspaces:
        directory = project.workspace_dir(name)
        found[f"{directory}/"] = "dir"
        own = str(directory / "make.toml")
        found.setdefault(own, file_digest(own))
    return found
