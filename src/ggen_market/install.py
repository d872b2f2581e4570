"""Installing gpacks into a project: ``.ggen/packages/<id>/<version>`` and ``ggen.lock``.

Every change is a transaction: packages are downloaded, verified (sha256 against the index and
the lock) and extracted into a staging directory under ``.ggen``; only then are they renamed into
place and the lock replaced atomically. ``.ggen`` is locked with a file lock meanwhile. On any
failure the renames are undone, so ``.ggen/`` and ``ggen.lock`` are exactly as they were.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_cleanroom.safe_write import write_output

from ._faults import crash_point
from .archive import ExtractLimits, extract_archive, tree_digest
from .catalog import Catalog
from .config import MarketConfig, embedded_gpacks_dir
from .errors import (
    InstallError,
    IntegrityError,
    LockfileError,
    ManifestError,
    MarketError,
    ResolutionError,
)
from .fsutil import LockTimeoutError, exclusive_lock
from .ids import check_id
from .index import PackVersion
from .journal import Step, leftovers, recover, undo, write_journal
from .lockfile import (
    LOCK_NAME,
    STATE_DIR,
    LockedPackage,
    Lockfile,
    package_dir,
    read_lock,
)
from .progress import Progress
from .registry import Registry, open_registry
from .resolver import resolve
from .versions import parse_range

LOCK_TIMEOUT = 120.0


def tool_version() -> str:
    """The version gpacks' ``ggen_compat`` ranges are checked against."""
    from . import __version__

    return __version__


def parse_requirement(spec: str) -> tuple[str, str | None]:
    """``io.x`` or ``io.x@^1.2`` -> (id, range or ``None``)."""
    pack_id, sep, rng = spec.partition("@")
    try:
        check_id(pack_id)
    except ValueError as exc:
        raise InstallError(f"{spec!r}: {exc}") from None
    if sep and not rng.strip():
        raise InstallError(f"{spec!r}: nothing after '@' (write e.g. {pack_id}@^1.2)")
    if sep:
        parse_range(rng, what=f"range of {pack_id}")
    return pack_id, (rng.strip() if sep else None)


@dataclass
class Change:
    """What an operation did, for reports: ids with old and new versions."""

    added: list[LockedPackage] = field(default_factory=list)
    removed: list[LockedPackage] = field(default_factory=list)
    repaired: list[LockedPackage] = field(default_factory=list)
    kept: list[LockedPackage] = field(default_factory=list)
    #: ``add``/``update`` with nothing to do because the project has no ggen.lock at all.
    nothing_pinned: bool = False

    def to_json(self) -> dict[str, Any]:
        def brief(pkgs: list[LockedPackage]) -> list[dict[str, str]]:
            return [{"id": p.id, "version": p.version, "sha256": p.sha256} for p in pkgs]

        return {
            "added": brief(self.added),
            "removed": brief(self.removed),
            "repaired": brief(self.repaired),
            "kept": brief(self.kept),
            "nothing_pinned": self.nothing_pinned,
        }


@dataclass(frozen=True)
class VerifyResult:
    """The state of one pinned package: ``ok``, ``modified``, ``missing`` or ``unlocked``."""

    id: str
    version: str
    status: str
    expected: str = ""
    actual: str = ""


class Project:
    """A project directory: its ``ggen.lock`` and ``.ggen`` state, and the registries to use."""

    def __init__(
        self,
        root: Path,
        config: MarketConfig,
        *,
        offline: bool = False,
        progress: Progress | None = None,
        limits: ExtractLimits | None = None,
        allow_fallback: bool = False,
        require_validated: bool = False,
    ) -> None:
        self.root = root.resolve()
        self.allow_fallback = allow_fallback
        #: Only versions with a passing validation statement by a trusted key (flag or ggen.toml).
        self.require_validated = require_validated or config.require_validated
        self.config = config
        self.offline = offline
        self.progress = progress or Progress(enabled=False)
        self.limits = limits or ExtractLimits()
        self._catalog: Catalog | None = None
        self._registries: dict[str, Registry] = {}

    @property
    def lock_path(self) -> Path:
        return self.root / LOCK_NAME

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    def registry(self, url: str) -> Registry:
        """The (shared) registry object for ``url``."""
        if url not in self._registries:
            self._registries[url] = open_registry(
                url,
                cache=self.config.cache_dir,
                timeout=self.config.timeout,
                offline=self.offline,
                embedded=embedded_gpacks_dir(),
            )
        return self._registries[url]

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = Catalog(
                [self.registry(spec.url) for spec in self.config.registries],
                allow_fallback=self.allow_fallback,
            )
        return self._catalog

    def lock(self) -> Lockfile:
        """The current lock (empty when there is none)."""
        return read_lock(self.lock_path) or Lockfile()

    def recover(self) -> None:
        """Undo or finish what a ggen killed while changing this project left (see
        :mod:`.journal`); nothing to do, and no lock taken, when it left nothing."""
        if not leftovers(self.state_dir):
            return
        try:
            with exclusive_lock(self.state_dir / ".lock", timeout=LOCK_TIMEOUT):
                recover(self.state_dir, self.lock_path)
        except LockTimeoutError:
            raise InstallError(
                f"{self.state_dir}: another ggen is changing this project (waited"
                f" {LOCK_TIMEOUT:g} s for {self.state_dir / '.lock'})"
            ) from None

    # -- operations ---------------------------------------------------------------------------

    def add(self, specs: list[str]) -> Change:
        """Add gpacks (``id`` or ``id@range``); with none, install exactly what ggen.lock pins."""
        if not specs and not self.lock_path.exists():
            return Change(nothing_pinned=True)  # and no .ggen/ made for it
        with self._transaction() as txn:
            current = self.lock()
            if not specs:
                return txn.apply(self._install_pinned(current, txn), current)
            requires = dict(current.requires)
            new_ids: list[str] = []
            for spec in specs:
                pack_id, rng = parse_requirement(spec)
                self.catalog.require(pack_id)
                requires[pack_id] = rng if rng is not None else requires.get(pack_id, "*")
                new_ids.append(pack_id)
            prefer = {pid: pkg.version for pid, pkg in current.packages.items()}
            chosen = resolve(
                requires, self.catalog.lookup, prefer=prefer, tool_version=tool_version()
            )
            self._check_validated(chosen.values())
            for pack_id in new_ids:
                if requires[pack_id] == "*":
                    requires[pack_id] = f"^{chosen[pack_id].version}"
            target = self._stage_resolution(chosen, requires, current, txn)
            return txn.apply(target, current)

    def update(self, ids: list[str]) -> Change:
        """Move gpacks (all, or ``ids`` and what they need) to the newest versions in range."""
        if not ids and not self.lock_path.exists():
            return Change(nothing_pinned=True)
        with self._transaction() as txn:
            current = self.lock()
            for pack_id in ids:
                if pack_id not in current.packages:
                    raise InstallError(f"{pack_id}: not installed (see `ggen market list`)")
            prefer = {
                pid: pkg.version for pid, pkg in current.packages.items() if ids and pid not in ids
            }
            chosen = resolve(
                current.requires, self.catalog.lookup, prefer=prefer, tool_version=tool_version()
            )
            self._check_validated(chosen.values())
            target = self._stage_resolution(chosen, dict(current.requires), current, txn)
            return txn.apply(target, current)

    def remove(self, ids: list[str]) -> Change:
        """Drop gpacks from the requirements and delete what nothing needs any more."""
        with self._transaction() as txn:
            current = self.lock()
            requires = dict(current.requires)
            for pack_id in ids:
                if pack_id not in requires:
                    users = [
                        p.id
                        for p in current.packages.values()
                        if any(d.split("@")[0] == pack_id for d in p.dependencies)
                    ]
                    if users:
                        raise InstallError(
                            f"{pack_id}: installed only as a dependency of {', '.join(users)};"
                            " remove those instead"
                        )
                    raise InstallError(f"{pack_id}: not installed (see `ggen market list`)")
                del requires[pack_id]
            keep = _closure(requires, current.packages)
            target = Lockfile(
                requires=requires,
                packages={pid: current.packages[pid] for pid in sorted(keep)},
            )
            return txn.apply(target, current)

    def verify(self) -> list[VerifyResult]:
        """Re-hash every installed package against ggen.lock.

        Raises :class:`LockfileError` outside a project (no ggen.lock and nothing installed).
        """
        if not self.lock_path.exists() and not (self.state_dir / "packages").is_dir():
            raise LockfileError(
                f"{self.root}: not a ggen project (no {LOCK_NAME} and no {STATE_DIR}/packages);"
                " nothing to verify (run it in a project, or pass --project DIR)"
            )
        self.recover()
        current = self.lock()
        results: list[VerifyResult] = []
        for pid in sorted(current.packages):
            pkg = current.packages[pid]
            path = pkg.install_dir(self.root)
            if not path.is_dir():
                results.append(VerifyResult(pid, pkg.version, "missing", pkg.tree_sha256))
                continue
            actual = tree_digest(path)
            status = "ok" if actual == pkg.tree_sha256 else "modified"
            results.append(VerifyResult(pid, pkg.version, status, pkg.tree_sha256, actual))
        packages_dir = self.state_dir / "packages"
        if packages_dir.is_dir():
            for id_dir in sorted(packages_dir.iterdir()):
                for version_dir in sorted(id_dir.iterdir()) if id_dir.is_dir() else []:
                    pinned = current.packages.get(id_dir.name)
                    if pinned is None or pinned.version != version_dir.name:
                        results.append(VerifyResult(id_dir.name, version_dir.name, "unlocked"))
        return results

    # -- internals ----------------------------------------------------------------------------

    def _refuse_links(self) -> None:
        """Never stage or install through a link: ``.ggen`` and ``.ggen/packages`` must be
        directories of this project (or missing), not links to somewhere else."""
        for path in (self.state_dir, self.state_dir / "packages"):
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                raise InstallError(
                    f"{path} is {'a link' if path.is_symlink() else 'not a directory'}: ggen "
                    "installs only into a directory of the project itself; remove it and run "
                    "the command again"
                )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[_Transaction]:
        self._refuse_links()
        created = not self.state_dir.exists()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            try:
                with exclusive_lock(self.state_dir / ".lock", timeout=LOCK_TIMEOUT):
                    recover(self.state_dir, self.lock_path)
                    txn = _Transaction(self)
                    crash_point("staging created")
                    try:
                        yield txn
                    finally:
                        txn.cleanup()
            except LockTimeoutError:
                raise InstallError(
                    f"{self.state_dir}: another ggen is changing this project (waited"
                    f" {LOCK_TIMEOUT:g} s for {self.state_dir / '.lock'})"
                ) from None
        except BaseException:
            if created:
                shutil.rmtree(self.state_dir, ignore_errors=True)
            raise

    def _install_pinned(self, current: Lockfile, txn: _Transaction) -> Lockfile:
        """Stage every pinned package that is missing or damaged, from its recorded source."""
        if self.require_validated:
            self._check_validated(self._pinned_version(pkg) for pkg in current.packages.values())
        for pkg in current.packages.values():
            if self._intact(pkg):
                continue
            registry = self.registry(pkg.source)
            version = PackVersion(
                id=pkg.id, version=pkg.version, archive=pkg.archive, sha256=pkg.sha256
            )
            txn.stage(version, registry, pinned=pkg)
        return current

    def _check_validated(self, versions: Iterable[PackVersion]) -> None:
        """With :attr:`require_validated`, refuse versions a trusted key did not validate."""
        if self.require_validated:
            from .trust.require import load_trusted_keys, require_validated

            require_validated(list(versions), load_trusted_keys(self.config))

    def _pinned_version(self, pkg: LockedPackage) -> PackVersion:
        """The index's entry for a pinned package (its validation), with the pinned digest."""
        entry = self.registry(pkg.source).index().packs.get(pkg.id)
        listed = entry.versions.get(pkg.version) if entry is not None else None
        return PackVersion(id=pkg.id, version=pkg.version, archive=pkg.archive,
                           sha256=pkg.sha256,
                           validation=listed.validation if listed else None)  # fmt: skip

    def _intact(self, pkg: LockedPackage) -> bool:
        path = pkg.install_dir(self.root)
        return path.is_dir() and tree_digest(path) == pkg.tree_sha256

    def _stage_resolution(
        self,
        chosen: Mapping[str, PackVersion],
        requires: dict[str, str],
        current: Lockfile,
        txn: _Transaction,
    ) -> Lockfile:
        packages: dict[str, LockedPackage] = {}
        for pid in sorted(chosen):
            version = chosen[pid]
            pinned = current.packages.get(pid)
            if pinned is not None and pinned.version == version.version:
                if pinned.sha256 != version.sha256:
                    raise IntegrityError(
                        f"{pid}@{version.version}: the registry now lists sha256 {version.sha256}"
                        f" but ggen.lock pinned {pinned.sha256}; the published archive changed."
                        " Refusing it (remove the package and add it again if this is expected)"
                    )
                if self._intact(pinned):
                    packages[pid] = pinned
                    continue
            entry_registry = self.catalog.require(pid)[1]
            packages[pid] = txn.stage(version, entry_registry, pinned=None)
        return Lockfile(requires=dict(sorted(requires.items())), packages=packages)


def _closure(requires: Mapping[str, str], packages: Mapping[str, LockedPackage]) -> set[str]:
    keep: set[str] = set()
    todo = list(requires)
    while todo:
        pid = todo.pop()
        if pid in keep or pid not in packages:
            continue
        keep.add(pid)
        todo.extend(d.split("@")[0] for d in packages[pid].dependencies)
    return keep


class _Transaction:
    """Staging area and the all-or-nothing switch of packages and lock."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=project.state_dir))
        self.staged: dict[tuple[str, str], Path] = {}

    def stage(
        self, version: PackVersion, registry: Registry, *, pinned: LockedPackage | None
    ) -> LockedPackage:
        """Download, verify and extract one package into the staging area."""
        from .builder import check_gpack

        pid, ver = version.id, version.version
        label = f"{pid}@{ver}"
        download = self.staging / f"{pid}-{ver}.tar.gz"
        actual = registry.fetch(
            version.archive, download, size=version.size, progress=self.project.progress
        )
        crash_point(f"fetched {label}")
        expected = pinned.sha256 if pinned else version.sha256
        if actual != expected:
            where = "ggen.lock pinned" if pinned else "the index lists"
            raise IntegrityError(
                f"{label}: sha256 mismatch: {where} {expected}, the downloaded archive"
                f" {version.archive!r} from {registry.url} is {actual}; refusing it"
            )
        tree = self.staging / "tree" / pid / ver
        extract_archive(
            download, tree, limits=self.project.limits, label=f"{label} ({version.archive})"
        )
        download.unlink()
        crash_point(f"extracted {label}")
        try:
            manifest = check_gpack(tree, deep=False)
        except ManifestError as exc:
            raise IntegrityError(f"{label}: the archive's gpack.toml is invalid: {exc}") from None
        if (manifest.id, manifest.version) != (pid, ver):
            raise IntegrityError(
                f"{label}: the archive holds {manifest.id}@{manifest.version}; the index and the"
                " archive disagree, refusing it"
            )
        if pinned is None and dict(manifest.dependencies) != dict(version.dependencies):
            raise IntegrityError(
                f"{label}: gpack.toml declares dependencies {dict(manifest.dependencies)} but the"
                f" index lists {dict(version.dependencies)}; refusing it"
            )
        digest = tree_digest(tree)
        if pinned is not None and digest != pinned.tree_sha256:
            raise IntegrityError(
                f"{label}: extracted tree digest {digest} differs from ggen.lock's"
                f" {pinned.tree_sha256}; refusing it"
            )
        self.staged[(pid, ver)] = tree
        # Dependency versions are filled in by apply(), once the whole resolution is known.
        deps = pinned.dependencies if pinned else tuple(f"{d}@?" for d in manifest.dependencies)
        return LockedPackage(
            id=pid,
            version=ver,
            source=registry.source,
            archive=version.archive,
            sha256=actual,
            tree_sha256=digest,
            dependencies=deps,
            test_pack=manifest.is_test_pack,
        )

    def apply(self, target: Lockfile, current: Lockfile) -> Change:
        """Move ``.ggen/packages`` and ``ggen.lock`` from ``current`` to ``target``, atomically.

        The plan is journaled first (see :mod:`.journal`): an exception undoes it here, a kill
        is undone (or completed, if the lock was written) by the next transaction.
        """
        target = _fill_dependency_versions(target)
        project = self.project
        existed = {key for key in self.staged if package_dir(project.root, *key).exists()}
        steps, change = self._plan(target, current)
        lock_exists = project.lock_path.exists()
        write_lock = (target != current or not lock_exists) and bool(target.packages or lock_exists)
        lock_text = target.render() if write_lock else None
        write_journal(self.staging, steps, lock_text)
        crash_point("journal written")
        try:
            for step in steps:
                if step[0] == "mkdir":
                    os.mkdir(step[1])
                else:
                    os.rename(step[1], step[2])
                crash_point(f"{step[0]} {step[-1]}")
            if lock_text is not None:
                write_output(project.lock_path, lock_text, durable=True)
                crash_point("lock written")
        except BaseException as exc:
            undo(steps)
            if isinstance(exc, MarketError):
                raise
            if isinstance(exc, OSError):
                raise InstallError(f"{project.root}: could not switch packages: {exc}") from exc
            raise
        for pid, ver in sorted(self.staged):
            repaired = (pid, ver) in existed and pid in current.packages
            (change.repaired if repaired else change.added).append(target.packages[pid])
        for old in current.packages.values():
            id_dir = old.install_dir(project.root).parent
            if id_dir.is_dir() and not any(id_dir.iterdir()):
                id_dir.rmdir()
        change.kept = [
            p for pid, p in sorted(target.packages.items())
            if (pid, p.version) not in self.staged
        ]  # fmt: skip
        return change

    def _plan(self, target: Lockfile, current: Lockfile) -> tuple[list[Step], Change]:
        """The directories to make and the renames that switch the packages, in order."""
        change = Change()
        steps: list[Step] = []
        trash = self.staging / "trash"
        steps.append(("mkdir", str(trash)))
        root = self.project.root
        moved_away: set[Path] = set()
        made: set[Path] = set()
        for pid, old in sorted(current.packages.items()):
            new = target.packages.get(pid)
            replaced = (
                new is None or new.version != old.version or (pid, old.version) in self.staged
            )
            path = old.install_dir(root)
            if replaced and path.exists():
                steps.append(("move", str(path), str(trash / f"{pid}-{old.version}")))
                moved_away.add(path)
            if new is None or new.version != old.version:
                change.removed.append(old)
        for (pid, ver), tree in sorted(self.staged.items()):
            final = package_dir(root, pid, ver)
            for parent in reversed(final.parents):
                if parent.is_relative_to(root) and not parent.exists() and parent not in made:
                    steps.append(("mkdir", str(parent)))
                    made.add(parent)
            if final.exists() and final not in moved_away:
                steps.append(("move", str(final), str(trash / f"{pid}-{ver}-stale")))
            steps.append(("move", str(tree), str(final)))
        return steps, change

    def cleanup(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def _fill_dependency_versions(lock: Lockfile) -> Lockfile:
    """Write each package's dependencies as ``id@version`` with the versions ``lock`` pins."""
    packages = {}
    for pid, pkg in lock.packages.items():
        deps = []
        for dep in pkg.dependencies:
            dep_id = dep.split("@")[0]
            if dep_id not in lock.packages:
                raise ResolutionError(f"{pid}: its dependency {dep_id} was not resolved")
            deps.append(f"{dep_id}@{lock.packages[dep_id].version}")
        packages[pid] = LockedPackage(**{**pkg.__dict__, "dependencies": tuple(sorted(deps))})
    return Lockfile(requires=lock.requires, packages=packages)
