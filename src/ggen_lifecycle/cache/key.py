"""A task's cache key: its commands, declared environment, directory, inputs and dependencies."""

from __future__ import annotations

from .. import _jsonc, files
from .._digest import sha256

TYPE_CHECKING = False  # typing itself is not imported: the cache-hit fast path loads this module
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path

    from ..graph import Node

KEY_VERSION = b"ggen-lifecycle-cache-v1\0"


def compute_key(
    commands: Sequence[str],
    env: Mapping[str, str],
    cwd: str,
    input_hashes: Iterable[tuple[str, str]],
    dependency_keys: Iterable[str],
) -> str:
    """sha256 of the commands, the declared environment, the working directory (relative to the
    project), every input file's path and content hash (sorted by path) and the dependencies'
    keys (sorted)."""
    h = sha256(KEY_VERSION)
    head = {"commands": list(commands), "env": dict(sorted(env.items())), "cwd": cwd}
    h.update(_jsonc.dumps(head, sort_keys=True).encode())
    h.update(b"\0inputs\0")
    # one string, encoded once: thousands of inputs per task
    h.update("".join(f"{rel}\0{digest}\n" for rel, digest in sorted(input_hashes)).encode())
    h.update(b"\0deps\0")
    h.update("".join(f"{key}\n" for key in sorted(dependency_keys)).encode())
    return h.hexdigest()


def task_key(
    node: Node, root: Path, dependency_keys: Iterable[str], memo: files.HashMemo | None = None
) -> str:
    """The key of task ``node`` of the project at ``root`` (input hashes through ``memo``).

    With ``cache = true`` and no ``inputs`` every file under the task's directory is an input,
    except its declared outputs.
    """
    inputs, _ = files.expand(node.cwd, input_patterns(node))
    hashes = files.hash_files(node.cwd, inputs, memo)
    return compute_key(node.commands, node.env, key_cwd(node, root), hashes, dependency_keys)


def input_patterns(node: Node) -> list[str]:
    """The globs of task ``node``'s inputs (see :func:`task_key`)."""
    assert node.spec is not None
    spec = node.spec
    patterns = list(spec.inputs)
    if not patterns and spec.cache_enabled:
        patterns = ["**", *(f"!{p}" for p in spec.outputs)]
    return patterns


def key_cwd(node: Node, root: Path) -> str:
    """Task ``node``'s directory as its key holds it: relative to the project ``root``."""
    try:
        return node.cwd.relative_to(root).as_posix()
    except ValueError:
        return str(node.cwd)
