"""``ggen market publish``: add a validated version, its archive and its statement to a registry.

The registry is a directory holding ``index.json`` and ``archives/`` (what ``ggen market index``
writes, and what ``ggen market serve`` or a git repository serves). The archive and the new
index are written all or nothing; a version already published with other bytes is refused.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ..builder import archive_name
from ..errors import MarketError
from ..index import (
    INDEX_NAME,
    Index,
    PackEntry,
    dump_index,
    entry_from_manifest,
    parse_index,
    updated_stamp,
)
from ..manifest import MANIFEST_NAME, Manifest


class PublishError(MarketError):
    """A registry that cannot take this version; nothing was written."""


def registry_directory(target: str) -> Path:
    """The directory behind ``--registry`` (a path or ``file://``); http(s) registries are
    uploaded to (:mod:`ggen_market.hosting.upload`), other schemes refused."""
    parsed = urlparse(target)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:
        raise PublishError(
            f"--registry {target}: publish writes to a directory (a path or file://) or uploads"
            " to an http(s):// registry (`ggen market serve`); for a git registry, publish into"
            " its checkout and commit"
        )
    return Path(target)


def publish_version(
    registry: Path, manifest: Manifest, data: bytes, envelope: dict[str, Any]
) -> PackEntry:
    """Add ``manifest``'s version (archive ``data``, statement ``envelope``) to ``registry``."""
    from pytest_cleanroom.safe_write import write_outputs

    from ..archive import sha256_bytes

    packs = _current_packs(registry)
    rel = archive_name(manifest.id, manifest.version)
    sha = sha256_bytes(data)
    new = entry_from_manifest(manifest, rel, sha, len(data))
    version = replace(new.versions[manifest.version], validation=envelope)
    merged = _merge(packs.get(manifest.id), new, version)
    packs[manifest.id] = merged
    target = registry / rel
    if target.is_file() and target.read_bytes() != data:
        raise PublishError(f"{target}: exists with other content; refusing to replace it")
    (registry / "archives").mkdir(parents=True, exist_ok=True)
    index = Index(packs=dict(sorted(packs.items())), updated=updated_stamp())
    write_outputs([(target, data), (registry / INDEX_NAME, dump_index(index))])
    return merged


def _current_packs(registry: Path) -> dict[str, PackEntry]:
    index_path = registry / INDEX_NAME
    if index_path.is_file():
        return dict(parse_index(index_path.read_bytes(), str(index_path)).packs)
    if registry.is_dir() and any(p.joinpath(MANIFEST_NAME).is_file() for p in registry.iterdir()):
        raise PublishError(
            f"{registry}: a folder of gpack sources without {INDEX_NAME}; publish into a"
            " registry directory (one `ggen market index` wrote, or an empty one)"
        )
    if registry.exists() and not registry.is_dir():
        raise PublishError(f"{registry}: not a directory")
    return {}


def _merge(current: PackEntry | None, new: PackEntry, version: Any) -> PackEntry:
    number = version.version
    if current is None:
        return replace(new, versions={number: version})
    if number in current.versions and current.versions[number].sha256 != version.sha256:
        raise PublishError(
            f"{new.id}@{number}: already published with another archive"
            f" (sha256 {current.versions[number].sha256}); publish a new version instead"
        )
    versions = {**{v: current.versions[v] for v in current.versions}, number: version}
    newest = max(PackEntry(id=new.id, name=new.name, versions=versions).sorted_versions())
    base = new if str(newest) == number else current
    return replace(base, versions=versions, downloads=current.downloads, known_latest=None)
