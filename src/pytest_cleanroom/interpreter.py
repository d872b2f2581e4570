"""The Python running the engine as a sandbox sees it, and why a program is missing in a sandbox.

``cleanroom.run([sys.executable, "-m", "pkg"])`` must work at every level: the interpreter is
often a link into a directory the policy hides (pyenv under ``~/.pyenv``, uv's managed Pythons
under ``~/.local/share/uv``, anything under ``/root``) or outside an allow-list view (a venv in
the project). :func:`interpreter_dirs` names the directories to let through read-only (what
``Policy.interpreter_readable`` turns on), :func:`sandbox_path` puts the venv's ``bin`` first on
``PATH`` so its console scripts are found by name, :func:`interpreter_links` are the links
on the way there that the sandbox recreates, and :func:`missing_program_hint` tells a
program the policy hides from one that does not exist (:func:`container_program_hint`: one a
container backend cannot see at all).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import cache

#: Files whose presence marks a directory as a Python installation or a venv (never a home).
_MARKERS = ("pyvenv.cfg", f"lib/python{sys.version_info[0]}.{sys.version_info[1]}")


@cache
def interpreter_dirs() -> tuple[str, ...]:
    """The real directories of this interpreter's venv and installation: ``sys.prefix``,
    ``sys.base_prefix`` (and the exec prefixes) and where each link of ``sys.executable``
    leads, each only if it holds a Python installation or a venv and is not ``/``."""
    found: set[str] = set()
    for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        real = os.path.realpath(prefix)
        if real != "/" and any(os.path.exists(os.path.join(real, m)) for m in _MARKERS):
            found.add(real)
    for hop in _link_chain(sys.executable):
        directory = os.path.realpath(os.path.dirname(hop))  # mounts need real paths
        if not any(directory == d or directory.startswith(d + "/") for d in found):
            parent = os.path.dirname(directory)  # .../bin -> the installation
            if parent != "/" and any(os.path.exists(os.path.join(parent, m)) for m in _MARKERS):
                found.add(parent)
    return tuple(sorted(found))


@cache
def interpreter_links() -> tuple[tuple[str, str], ...]:
    """``(path, target)`` of each symlink on the way to this interpreter by the names the engine
    knows it by (``sys.prefix`` and ``sys.exec_prefix`` as given, each hop of
    ``sys.executable``), such as a project's ``.venv`` that is a link to a venv kept elsewhere.
    A sandbox that shows only :func:`interpreter_dirs` recreates them so those names work."""
    found: dict[str, str] = {}
    starts = [sys.prefix, sys.exec_prefix, *map(os.path.dirname, _link_chain(sys.executable))]
    for start in starts:
        found.update(_links_on_the_way(start))
    return tuple(sorted(found.items()))


def _links_on_the_way(path: str) -> dict[str, str]:
    """Every symlink that resolving ``path`` goes through (those in link targets too)."""
    found: dict[str, str] = {}
    pending = [os.path.abspath(path)]
    while pending and len(found) < 40:
        parts = pending.pop().split("/")[1:]
        current = ""
        for i, part in enumerate(parts):
            current = f"{current}/{part}"
            if os.path.islink(current) and current not in found:
                found[current] = os.readlink(current)
                rest = os.path.join(os.path.dirname(current), found[current], *parts[i + 1 :])
                pending.append(os.path.normpath(rest))
                break
    return found


def _link_chain(path: str) -> list[str]:
    """``path`` and every path its symlinks lead to, made absolute (at most 40 hops)."""
    chain = [os.path.abspath(path)]
    for _ in range(40):
        current = chain[-1]
        try:
            target = os.readlink(current)
        except OSError:
            break
        chain.append(os.path.normpath(os.path.join(os.path.dirname(current), target)))
    return chain


@cache
def venv_bin() -> str | None:
    """The active venv's ``bin`` directory (``None`` outside a venv); looked up once, as
    :func:`interpreter_dirs` are."""
    if sys.prefix == sys.base_prefix:
        return None
    path = os.path.join(sys.prefix, "bin")
    return path if os.path.isdir(path) else None


def sandbox_path(base: str, *, interpreter_readable: bool) -> str:
    """``PATH`` in a sandbox: the venv's ``bin`` first when the interpreter is let through."""
    bin_dir = venv_bin() if interpreter_readable else None
    return f"{bin_dir}:{base}" if bin_dir is not None else base


def missing_program_hint(
    program: str,
    visible: Callable[[str], bool],
    sandbox_path_value: str,
    host_path: str | None = None,
) -> str | None:
    """Why ``program`` was not found in a sandbox although it exists on the host, or ``None``.

    ``visible`` tells whether a host path can be read in the sandbox; ``host_path`` is the
    host's ``PATH`` (default: this process's).
    """
    if "/" in program:  # a relative one names a file of the sandbox (its workspace)
        if not program.startswith("/") or not os.path.exists(program):
            return None
        return _hidden(program, os.path.realpath(program))
    searched = host_path if host_path is not None else os.environ.get("PATH", "")
    for directory in searched.split(":"):
        candidate = os.path.join(directory or ".", program)
        if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
            continue
        real = os.path.realpath(candidate)
        if not visible(real):
            return _hidden(candidate, real)
        if directory not in sandbox_path_value.split(":"):
            return (
                f"{program} exists on the host as {candidate}, in a directory that is not on "
                f"the sandbox's PATH ({sandbox_path_value}): run it by its path, or add "
                f"{directory} to PATH with env={{'PATH': ...}}"
            )
        return None
    return None


def container_program_hint(program: str, backend: str, image: str) -> str | None:
    """Why ``program``, which exists on this host, was not found in a container of ``image``
    (``None`` when the host has no such program either)."""
    if "/" in program:
        found = program if program.startswith("/") and os.path.exists(program) else None
    else:
        searched = [*os.environ.get("PATH", "").split(":"), venv_bin() or ""]
        candidates = (os.path.join(d, program) for d in searched if d)
        found = next((c for c in candidates if os.path.isfile(c) and os.access(c, os.X_OK)), None)
    if found is None:
        return None
    where = "" if found == program else f" as {found}"
    return (
        f"{program} exists on this host{where}, but the {backend} backend runs commands on "
        f"the image's own filesystem ({image}), which has no such program: the host's files are "
        "not shared into containers, neither the Python running pytest nor its venv and console "
        "scripts (interpreter_readable applies to the local backends only). Run the image's own "
        "program (for example python3 instead of sys.executable), install the package in the "
        "image, or use a local backend (--cleanroom-backend=bwrap or unshare)"
    )


def _hidden(shown: str, real: str) -> str:
    where = real if real == shown else f"{real}, where {shown} leads"
    directory = os.path.dirname(real)
    if any(real == d or real.startswith(d + "/") for d in interpreter_dirs()):
        return (
            f"{shown} exists on the host but is hidden by the policy ({where}): it is part of "
            "the Python running the engine; interpreter_readable=True (the default at every "
            "level) lets its venv and installation through read-only"
        )
    return (
        f"{shown} exists on the host but is hidden by the policy ({where}); expose it "
        f"read-only with readable_paths=[{directory!r}] (pytest: "
        f"--cleanroom-readable-path={directory} or the ini key cleanroom_readable_paths)"
    )
