"""Build registry indexes from a folder of gpack directories and/or archives."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_cleanroom.safe_write import write_output

from .archive import extract_archive, pack_directory, sha256_bytes
from .errors import ArchiveError, ManifestError, RegistryIndexError
from .index import (
    INDEX_NAME,
    Index,
    PackEntry,
    PackVersion,
    dump_index,
    entry_from_manifest,
    merge_entries,
    parse_index,
    updated_stamp,
)
from .manifest import MANIFEST_NAME

if TYPE_CHECKING:
    from .manifest import Manifest

ARCHIVE_DIR = "archives"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


def check_gpack(root: Path, *, deep: bool = True) -> Manifest:
    """Validate the gpack at ``root``: manifest, scenario files and (``deep``) templates."""
    from .manifest import load_manifest

    manifest = load_manifest(root)
    if manifest.scenarios is not None:
        from .testpack import check_test_sections

        check_test_sections(root, manifest)
    if deep:
        from .template.checks import check_templates

        check_templates(root, manifest)
    return manifest


def pack_gpack(root: Path, *, deep: bool = True) -> tuple[Manifest, bytes]:
    """Check and pack a gpack directory; returns its manifest and reproducible archive bytes."""
    manifest = check_gpack(root, deep=deep)
    return manifest, pack_directory(root)


def archive_name(pack_id: str, version: str) -> str:
    """``archives/<id>-<version>.tar.gz``."""
    return f"{ARCHIVE_DIR}/{pack_id}-{version}.tar.gz"


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.is_file() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_output(path, data)


def _manifest_of_archive(data: bytes, label: str, deep: bool) -> Manifest:
    with tempfile.TemporaryDirectory(prefix="ggen-index-") as tmp:
        root = Path(tmp) / "gpack"
        extract_archive(data, root, label=label)
        return check_gpack(root, deep=deep)


def build_index(src: Path, out: Path | None = None, *, deep: bool = True) -> Index:
    """Index every gpack directory and archive in ``src``; write archives and index.json to ``out``.

    Directories are packed into ``out/archives/<id>-<version>.tar.gz``; archives found in ``src``
    (or its ``archives/``) are checked and referenced as they are. ``downloads`` counts and
    validation statements of an existing ``out/index.json`` are kept (a statement only while it
    is about the same archive digest). Every gpack is checked before anything is written; the
    error lists every bad one.
    """
    out = out or src
    if not src.is_dir():
        raise RegistryIndexError(f"{src}: not a directory of gpacks")
    if (src / MANIFEST_NAME).is_file():
        raise RegistryIndexError(
            f"{src}: is a gpack itself (it has a {MANIFEST_NAME}); index the folder that holds"
            f" it (`ggen market index {src.parent}`), or archive it with `ggen market pack {src}`"
        )
    planned: dict[Path, bytes] = {}  # archives to write, once everything checked out
    entries: list[PackEntry] = []
    problems: list[str] = []
    seen: dict[tuple[str, str], tuple[str, str]] = {}

    def add(entry: PackEntry, origin: str) -> bool:
        version = next(iter(entry.versions.values()))
        key = (entry.id, version.version)
        previous = seen.get(key)
        if previous is not None:
            if previous[0] != version.sha256:
                problems.append(
                    f"{entry.id}@{version.version} is provided twice with different content"
                    f" ({previous[1]} and {origin})"
                )
            return False
        seen[key] = (version.sha256, origin)
        entries.append(entry)
        return True

    for child in _candidates(src):
        try:
            found = _index_candidate(child, out, deep)
        except (ArchiveError, ManifestError, RegistryIndexError) as exc:
            problems.append(str(exc))
            continue
        if found is not None and add(found[0], str(child)) and found[1] is not None:
            planned[found[1]] = found[2]
    if problems:
        count = "1 gpack" if len(problems) == 1 else f"{len(problems)} gpacks"
        raise RegistryIndexError(
            f"{src}: {count} cannot be indexed (nothing was written):\n  " + "\n  ".join(problems)
        )
    packs = merge_entries(entries, str(src))
    packs = _keep_previous(out / INDEX_NAME, packs)
    index = Index(packs=packs, updated=updated_stamp())
    out.mkdir(parents=True, exist_ok=True)
    for target, data in planned.items():
        _write_if_changed(target, data)
    write_output(out / INDEX_NAME, dump_index(index))
    return index


def _candidates(src: Path) -> list[Path]:
    candidates = sorted(src.iterdir(), key=lambda p: p.name)
    if (src / ARCHIVE_DIR).is_dir():
        candidates += sorted((src / ARCHIVE_DIR).iterdir(), key=lambda p: p.name)
    return candidates


def _index_candidate(
    child: Path, out: Path, deep: bool
) -> tuple[PackEntry, Path | None, bytes] | None:
    """The entry for one gpack directory or archive, and the archive to write for it (if any)."""
    if child.is_dir() and (child / MANIFEST_NAME).is_file():
        manifest, data = pack_gpack(child, deep=deep)
        rel = archive_name(manifest.id, manifest.version)
        entry = entry_from_manifest(manifest, rel, sha256_bytes(data), len(data))
        return entry, out / rel, data
    if not (child.is_file() and child.name.endswith(ARCHIVE_SUFFIXES)):
        return None
    data = child.read_bytes()
    try:
        manifest = _manifest_of_archive(data, str(child), deep)
    except (ArchiveError, ManifestError) as exc:
        raise RegistryIndexError(f"{child}: cannot index this archive: {exc}") from None
    target: Path | None = None
    if child.resolve().is_relative_to(out.resolve()):
        rel = child.resolve().relative_to(out.resolve()).as_posix()
    else:
        rel = archive_name(manifest.id, manifest.version)
        target = out / rel
    return entry_from_manifest(manifest, rel, sha256_bytes(data), len(data)), target, data


def _keep_previous(path: Path, packs: dict[str, PackEntry]) -> dict[str, PackEntry]:
    """``packs`` with the download counts, and the validation statements of unchanged archives,
    of the index at ``path``."""
    if not path.is_file():
        return packs
    try:
        old = parse_index(path.read_bytes(), str(path))
    except RegistryIndexError:
        return packs
    kept: dict[str, PackEntry] = {}
    for pid, entry in packs.items():
        previous = old.packs.get(pid)
        if previous is not None:
            entry = PackEntry(
                **{
                    **entry.__dict__,
                    "downloads": previous.downloads or entry.downloads,
                    "versions": _keep_statements(entry, previous),
                }
            )
        kept[pid] = entry
    return kept


def _keep_statements(entry: PackEntry, previous: PackEntry) -> dict[str, PackVersion]:
    versions = dict(entry.versions)
    for number, version in versions.items():
        try:
            before = previous.versions.get(number)
        except RegistryIndexError:
            continue  # a damaged entry in the old index: nothing to keep from it
        if before is not None and before.validation and before.sha256 == version.sha256:
            versions[number] = replace(version, validation=before.validation)
    return versions


def _fingerprint(src: Path) -> str:
    """Changes whenever a file under ``src`` is added, removed, resized or touched."""
    from . import __version__

    digest = hashlib.sha256(f"{__version__}\n{src.resolve()}\n".encode())
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            st = path.stat()
            rel = path.relative_to(src).as_posix()
            digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_mode}\n".encode())
    return digest.hexdigest()[:24]


def source_index(src: Path, cache: Path) -> tuple[Index, Path]:
    """Index of a folder of gpack sources, built once into ``cache`` and reused until it changes.

    Returns the index and the directory its archive locations are relative to.
    """
    build_dir = cache / "source-index" / _fingerprint(src)
    index_path = build_dir / INDEX_NAME
    if index_path.is_file():
        try:
            return parse_index(index_path.read_bytes(), str(index_path)), build_dir
        except RegistryIndexError:
            pass  # a damaged cache entry: rebuild it below
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=_mkdir(cache / "source-index")))
    try:
        index = build_index(src, tmp, deep=False)
        if build_dir.exists():
            shutil.rmtree(build_dir, ignore_errors=True)
        try:
            os.replace(tmp, build_dir)
        except OSError:
            # Another process built the same fingerprint meanwhile: theirs is as good as ours.
            if not index_path.is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return index, build_dir


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
