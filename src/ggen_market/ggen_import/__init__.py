"""``ggen market import``: ggen's packages (``package.toml``, ggen's ``gpack.toml``) as gpacks.

Each package is converted, copied into a staging directory inside the output directory and
checked as ``ggen market pack`` checks a gpack, before anything appears at its place; by default
one package that cannot be imported stops the whole import with every reason, and nothing is
written. Each imported gpack appears at once (a rename), never half-copied.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MarketError
from ..fsutil import exclusive_lock
from ..manifest import MANIFEST_NAME, TemplatesSection, matching_files
from ..validation import read_toml
from ._convert import Change, Conversion, Note, convert, package_id, without_body_only
from ._files import GGEN_MANIFEST_COPY, manifest_toml, package_files, stage_package

__all__ = ["Change", "GgenImportError", "ImportReport", "Imported", "Refused", "import_packages"]

GGEN_MANIFESTS = ("package.toml", MANIFEST_NAME)
STAGING_PREFIX = ".ggen-import-"
LOCK_NAME = ".ggen-import.lock"


class GgenImportError(MarketError):
    """ggen packages that cannot be imported; nothing was written."""

    def __init__(self, message: str, refused: list[Refused] | None = None) -> None:
        super().__init__(message)
        self.refused = refused or []


@dataclass(frozen=True)
class Imported:
    """A package converted into a gpack (at ``path`` once written)."""

    source: Path
    id: str
    version: str
    path: Path
    changes: list[Change]

    def to_json(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "id": self.id,
            "version": self.version,
            "path": str(self.path),
            "changes": [c.to_json() for c in self.changes],
        }


@dataclass(frozen=True)
class Refused:
    """A package that cannot be imported, with every reason."""

    source: Path
    problems: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"source": str(self.source), "problems": self.problems}

    def __str__(self) -> str:
        return f"{self.source}:\n    " + "\n    ".join(self.problems)


@dataclass
class ImportReport:
    """What an import did (or, with ``dry_run``, would do)."""

    out: Path
    dry_run: bool
    imported: list[Imported] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": not self.refused,
            "dry_run": self.dry_run,
            "out": str(self.out),
            "imported": [i.to_json() for i in self.imported],
            "refused": [r.to_json() for r in self.refused],
        }


def find_packages(source: Path) -> list[Path]:
    """``source`` itself when it holds a ggen manifest, else its subfolders that hold one."""
    if not source.is_dir():
        raise GgenImportError(f"{source}: not a directory (a ggen package or a folder of them)")
    if _manifest_of(source) is not None:
        return [source]
    found = sorted(p for p in source.iterdir() if p.is_dir() and _manifest_of(p) is not None)
    if not found:
        raise GgenImportError(
            f"{source}: no package.toml or gpack.toml here or in its subfolders"
            " (a ggen package has one of them)"
        )
    return found


def _manifest_of(package: Path) -> Path | None:
    return next((package / n for n in GGEN_MANIFESTS if (package / n).is_file()), None)


def import_packages(
    sources: list[Path],
    out: Path,
    *,
    id_prefix: str = "io.ggen",
    force: bool = False,
    keep_going: bool = False,
    dry_run: bool = False,
) -> ImportReport:
    """Import every ggen package under ``sources`` into ``out/<id>/`` (see the module doc).

    ``keep_going`` writes the packages that can be imported and reports the others; ``force``
    replaces a gpack already at ``out/<id>``. Raises :class:`GgenImportError` when nothing may
    be written.
    """
    packages = [p for source in sources for p in find_packages(source)]
    report = ImportReport(out, dry_run)
    created = not dry_run and not os.path.lexists(out)
    try:
        _run(packages, out, id_prefix, force, keep_going, report)
    except BaseException:
        if created:  # leave no trace of a refused import
            with contextlib.suppress(OSError):
                (out / LOCK_NAME).unlink()
                out.rmdir()
        raise
    return report


def _run(
    packages: list[Path],
    out: Path,
    id_prefix: str,
    force: bool,
    keep_going: bool,
    report: ImportReport,
) -> None:
    dry_run = report.dry_run
    with _workspace(out, dry_run) as staging:
        staged = _stage_all(packages, out, staging, id_prefix, force, report)
        if report.refused and not keep_going:
            lines = "\n  ".join(str(r) for r in report.refused)
            raise GgenImportError(
                f"{len(report.refused)} of {len(packages)} package(s) cannot be imported;"
                f" nothing was written:\n  {lines}",
                report.refused,
            )
        if not dry_run:
            _commit(staged, staging)


@contextlib.contextmanager
def _workspace(out: Path, dry_run: bool) -> Iterator[Path]:
    """A staging directory beside the gpacks (one rename moves each into place), under a lock
    that also lets this run remove what a killed one left."""
    if dry_run:
        with tempfile.TemporaryDirectory(prefix=STAGING_PREFIX) as tmp:
            yield Path(tmp)
        return
    out.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out / LOCK_NAME):
        for leftover in out.glob(STAGING_PREFIX + "*"):
            shutil.rmtree(leftover, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
        try:
            yield staging
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _known_ids(packages: list[Path], prefix: str) -> dict[str, str]:
    """Package name -> id for the packages imported together (their manifests as far as read)."""
    known: dict[str, str] = {}
    for package in packages:
        with contextlib.suppress(MarketError):
            data = read_toml(_manifest_of(package) or package)
            info = data.get("package") or data.get("gpack") or {}
            pid = package_id(data, prefix)
            if pid and isinstance(info, dict) and isinstance(info.get("name"), str):
                known[info["name"]] = pid
                known[package.name] = pid
    return known


def _stage_all(
    packages: list[Path], out: Path, staging: Path, prefix: str, force: bool, report: ImportReport
) -> list[tuple[Path, Path]]:
    known = _known_ids(packages, prefix)
    staged: list[tuple[Path, Path]] = []
    for package in packages:
        manifest = _manifest_of(package) or package
        try:
            imported = _stage_one(package, manifest, staging, out, prefix, known)
        except MarketError as exc:
            report.refused.append(Refused(manifest, str(exc).splitlines()))
            continue
        if any(i.id == imported.id for i in report.imported):
            report.refused.append(Refused(manifest, [f"id {imported.id} is imported twice"]))
        elif os.path.lexists(imported.path) and not force:
            report.refused.append(
                Refused(manifest, [f"{imported.path} exists (pass --force to replace it)"])
            )
        else:
            report.imported.append(imported)
            staged.append((staging / imported.id, imported.path))
    return staged


def _stage_one(
    package: Path, manifest: Path, staging: Path, out: Path, prefix: str, known: dict[str, str]
) -> Imported:
    from ..builder import check_gpack

    found, problems = package_files(package)
    conv: Conversion = convert(read_toml(manifest), manifest, found, prefix=prefix, known=known)
    conv.problems[:0] = problems
    if conv.problems:
        raise GgenImportError("\n".join(conv.problems))
    patterns = conv.manifest.get("templates", {}).get("patterns", TemplatesSection().patterns)
    matched = [p.relative_to(package).as_posix() for p in matching_files(package, patterns)]
    without_body_only(conv, matched, found.body_only)
    gpack = conv.manifest["gpack"]
    dest = staging / gpack["id"]
    stage_package(package, found.files, dest, manifest_toml(conv.manifest), conv.added_files)
    if manifest.name == MANIFEST_NAME:
        conv.changes.append(
            Change(
                MANIFEST_NAME, Note("ggen's manifest"), GGEN_MANIFEST_COPY, "kept under that name"
            )
        )
    try:
        check_gpack(dest)
    except MarketError as exc:  # name the package's files, not the staging copy
        raise GgenImportError(str(exc).replace(str(dest), str(package))) from None
    return Imported(manifest, gpack["id"], gpack["version"], out / gpack["id"], conv.changes)


def _commit(staged: list[tuple[Path, Path]], staging: Path) -> None:
    """Move each staged gpack into place (a replaced one into the staging area first); undo
    every move done when one fails."""
    done: list[tuple[Path, Path]] = []
    try:
        for index, (new, dest) in enumerate(staged):
            if os.path.lexists(dest):
                old = staging / f"replaced-{index}"
                dest.rename(old)
                done.append((dest, old))
            new.rename(dest)
            done.append((new, dest))
    except OSError:
        for moved_from, moved_to in reversed(done):
            with contextlib.suppress(OSError):
                moved_to.rename(moved_from)
        raise
