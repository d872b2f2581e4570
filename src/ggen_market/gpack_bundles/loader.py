"""Finding and verifying a project's installed test gpacks through the marketplace's lockfile.

Imported only when the project has a ``ggen.lock``: this is where the marketplace gets loaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ..archive import tree_digest
from ..errors import MarketError
from ..lockfile import LOCK_NAME, LockedPackage, read_lock
from ..testpack import installed_test_packs
from .bundle import Bundle

FIX = (
    "run `ggen market verify` to see the state of every pack, then `ggen market add` to "
    "reinstall exactly what ggen.lock pins"
)


def load_bundles(project: Path) -> tuple[Bundle, ...]:
    """The test gpacks pinned in ``project/ggen.lock``, each verified against its lock digest.

    Raises ``pytest.UsageError`` naming the pack and the fix when one is missing or modified, or
    when the lock or a manifest is malformed.
    """
    lock_path = project / LOCK_NAME
    try:
        lock = read_lock(lock_path)
        if lock is None:
            return ()
        for pid in sorted(lock.packages):
            if lock.packages[pid].test_pack:
                _verify(project, lock.packages[pid])
        packs = installed_test_packs(project)
    except MarketError as exc:
        raise pytest.UsageError(f"cleanroom gpacks: {exc}") from None
    return tuple(
        Bundle(
            id=pack.id,
            version=pack.version,
            root=pack.root,
            policy=pack.cleanroom.level,
            policy_fields=pack.cleanroom.policy_changes(),
            timeout=pack.cleanroom.timeout,
            services=tuple(pack.cleanroom.services),
            env=dict(pack.cleanroom.env),
            backend=pack.cleanroom.backend,
            scenarios=pack.scenarios,
            fixtures=pack.fixtures,
        )
        for pack in packs
    )


def _verify(project: Path, pkg: LockedPackage) -> None:
    root = pkg.install_dir(project)
    label = f"{pkg.id}@{pkg.version}"
    if not root.is_dir():
        raise pytest.UsageError(
            f"cleanroom gpacks: test gpack {label} is pinned in {project / LOCK_NAME} but not "
            f"installed at {root}; run `ggen market add` to install what ggen.lock pins"
        )
    try:
        actual = tree_digest(root)
    except OSError as exc:
        raise pytest.UsageError(
            f"cleanroom gpacks: cannot read test gpack {label} at {root}: {exc}; {FIX}"
        ) from None
    if actual != pkg.tree_sha256:
        raise pytest.UsageError(
            f"cleanroom gpacks: test gpack {label} at {root} does not match ggen.lock "
            f"(tree sha256 {pkg.tree_sha256[:16]}… pinned, {actual[:16]}… found): its installed "
            f"files were changed; {FIX}"
        )
