"""Registry indexes (``index.json``): reading with strict checks, and building from gpacks.

Reading is done without pydantic on purpose: ``ggen market search`` parses indexes of tens of
thousands of packages on every call and must start fast. Every problem names the index and the
path of the bad field, e.g. ``packs["io.x"].versions["1.0.0"].sha256``.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import RegistryIndexError
from .ids import ID_PATTERN
from .versions import Version, is_version, parse_range

INDEX_NAME = "index.json"
INDEX_FORMAT = 1
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class PackVersion:
    """One published version of a gpack, as the index describes it."""

    id: str
    version: str
    archive: str
    sha256: str
    size: int | None = None
    dependencies: dict[str, str] = field(default_factory=dict)
    ggen_compat: str = "*"
    test_pack: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "archive": self.archive,
            "sha256": self.sha256,
            "dependencies": dict(sorted(self.dependencies.items())),
            "ggen_compat": self.ggen_compat,
        }
        if self.size is not None:
            data["size"] = self.size
        if self.test_pack:
            data["test_pack"] = True
        return data


@dataclass(frozen=True)
class PackEntry:
    """A gpack in an index: metadata of its newest version and every published version."""

    id: str
    name: str
    description: str = ""
    category: str = "general"
    tags: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    license: str = ""
    authors: tuple[str, ...] = ()
    homepage: str = ""
    downloads: int = 0
    versions: dict[str, PackVersion] = field(default_factory=dict)

    def sorted_versions(self) -> list[Version]:
        """Versions, newest first."""
        return sorted((Version.parse(v) for v in self.versions), reverse=True)

    @property
    def latest(self) -> str:
        """The newest version that is not a pre-release (or the newest at all)."""
        ordered = self.sorted_versions()
        stable = [v for v in ordered if v.prerelease is None]
        return str((stable or ordered)[0])

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "category": self.category,
            "tags": list(self.tags),
            "keywords": list(self.keywords),
            "license": self.license,
            "authors": list(self.authors),
            "homepage": self.homepage,
            "downloads": self.downloads,
            "versions": {
                str(v): self.versions[str(v)].to_json() for v in reversed(self.sorted_versions())
            },
        }


@dataclass(frozen=True)
class Index:
    """A parsed index: ``packs`` by id."""

    packs: dict[str, PackEntry]
    updated: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT,
            "updated": self.updated,
            "packs": {pid: self.packs[pid].to_json() for pid in sorted(self.packs)},
        }


def _fail(label: str, where: str, problem: str) -> RegistryIndexError:
    return RegistryIndexError(f"{label}: {where}: {problem}")


def _str(value: Any, label: str, where: str, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise _fail(label, where, f"expected a string, got {type(value).__name__}")
    return value


def _strs(value: Any, label: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(label, where, "expected a list of strings")
    return tuple(value)


_PACK_KEYS = frozenset(
    {"name", "description", "category", "tags", "keywords", "license", "authors", "homepage"}
    | {"downloads", "versions", "latest"}
)


def parse_index(text: str | bytes, label: str) -> Index:
    """Parse and check an index document; ``label`` (file or URL) prefixes every error."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryIndexError(
            f"{label}: not valid JSON ({exc}); the index may be truncated or corrupt"
        ) from None
    if not isinstance(data, dict):
        raise _fail(label, "(top level)", "expected a JSON object with 'packs'")
    fmt = data.get("format", INDEX_FORMAT)
    if fmt != INDEX_FORMAT:
        raise _fail(label, "format", f"unsupported index format {fmt!r} (this ggen reads 1)")
    packs_raw = data.get("packs")
    if not isinstance(packs_raw, dict):
        raise _fail(label, "packs", "missing, or not an object of id -> pack")
    packs: dict[str, PackEntry] = {}
    for pid, raw in packs_raw.items():
        where = f"packs[{pid!r}]"
        if not ID_PATTERN.match(pid):
            raise _fail(label, where, "not a reverse-DNS gpack id")
        if not isinstance(raw, dict):
            raise _fail(label, where, "expected an object")
        unknown = set(raw) - _PACK_KEYS
        if unknown:
            raise _fail(label, where, f"unknown keys {sorted(unknown)}")
        versions_raw = raw.get("versions")
        if not isinstance(versions_raw, dict) or not versions_raw:
            raise _fail(label, f"{where}.versions", "missing or empty")
        versions = {
            ver: _parse_version_entry(pid, ver, vraw, label, f"{where}.versions[{ver!r}]")
            for ver, vraw in versions_raw.items()
        }
        downloads = raw.get("downloads", 0)
        if not isinstance(downloads, int) or downloads < 0:
            raise _fail(label, f"{where}.downloads", "expected a non-negative integer")
        packs[pid] = PackEntry(
            id=pid,
            name=_str(raw.get("name"), label, f"{where}.name", default=pid),
            description=_str(raw.get("description"), label, f"{where}.description", ""),
            category=_str(raw.get("category"), label, f"{where}.category", "general"),
            tags=_strs(raw.get("tags"), label, f"{where}.tags"),
            keywords=_strs(raw.get("keywords"), label, f"{where}.keywords"),
            license=_str(raw.get("license"), label, f"{where}.license", ""),
            authors=_strs(raw.get("authors"), label, f"{where}.authors"),
            homepage=_str(raw.get("homepage"), label, f"{where}.homepage", ""),
            downloads=downloads,
            versions=versions,
        )
    updated = data.get("updated", "")
    return Index(packs=packs, updated=updated if isinstance(updated, str) else "")


def _parse_version_entry(pid: str, ver: str, raw: Any, label: str, where: str) -> PackVersion:
    if not is_version(ver):
        raise _fail(label, where, "not a semantic version")
    if not isinstance(raw, dict):
        raise _fail(label, where, "expected an object")
    archive = raw.get("archive")
    if not isinstance(archive, str) or not archive:
        raise _fail(label, f"{where}.archive", "missing")
    sha = raw.get("sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise _fail(label, f"{where}.sha256", "missing or not 64 lowercase hex digits")
    size = raw.get("size")
    if size is not None and (not isinstance(size, int) or size < 0):
        raise _fail(label, f"{where}.size", "expected a non-negative integer")
    deps = raw.get("dependencies", {})
    if not isinstance(deps, dict):
        raise _fail(label, f"{where}.dependencies", "expected an object of id -> range")
    for dep_id, rng in deps.items():
        if not isinstance(dep_id, str) or not ID_PATTERN.match(dep_id):
            raise _fail(label, f"{where}.dependencies", f"{dep_id!r} is not a gpack id")
        try:
            parse_range(rng)
        except ValueError as exc:
            raise _fail(label, f"{where}.dependencies[{dep_id!r}]", str(exc)) from None
    compat = raw.get("ggen_compat", "*")
    try:
        parse_range(compat)
    except ValueError as exc:
        raise _fail(label, f"{where}.ggen_compat", str(exc)) from None
    return PackVersion(
        id=pid,
        version=ver,
        archive=archive,
        sha256=sha,
        size=size,
        dependencies=dict(deps),
        ggen_compat=compat,
        test_pack=bool(raw.get("test_pack", False)),
    )


def entry_from_manifest(manifest: Any, archive: str, sha256: str, size: int) -> PackEntry:
    """A one-version :class:`PackEntry` for a gpack (``manifest`` is a ``Manifest``)."""
    info = manifest.gpack
    version = PackVersion(
        id=info.id,
        version=info.version,
        archive=archive,
        sha256=sha256,
        size=size,
        dependencies=dict(manifest.dependencies),
        ggen_compat=info.ggen_compat,
        test_pack=manifest.is_test_pack,
    )
    return PackEntry(
        id=info.id,
        name=info.name,
        description=info.description,
        category=info.category,
        tags=tuple(info.tags),
        keywords=tuple(info.keywords),
        license=info.license,
        authors=tuple(info.authors),
        homepage=info.homepage,
        versions={info.version: version},
    )


def merge_entries(entries: Iterable[PackEntry], label: str) -> dict[str, PackEntry]:
    """Combine one-version entries into packs; metadata comes from each pack's newest version."""
    merged: dict[str, PackEntry] = {}
    for entry in entries:
        current = merged.get(entry.id)
        if current is None:
            merged[entry.id] = entry
            continue
        overlap = set(current.versions) & set(entry.versions)
        if overlap:
            raise RegistryIndexError(
                f"{label}: {entry.id} version {sorted(overlap)[0]} is provided twice"
            )
        versions = {**current.versions, **entry.versions}
        newest = max(Version.parse(v) for v in versions)
        base = entry if str(newest) in entry.versions else current
        merged[entry.id] = PackEntry(
            id=base.id,
            name=base.name,
            description=base.description,
            category=base.category,
            tags=base.tags,
            keywords=base.keywords,
            license=base.license,
            authors=base.authors,
            homepage=base.homepage,
            downloads=max(current.downloads, entry.downloads),
            versions=versions,
        )
    return merged


def updated_stamp() -> str:
    """UTC timestamp for ``updated``; honours ``SOURCE_DATE_EPOCH`` for reproducible indexes."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    seconds = int(epoch) if epoch and epoch.isdigit() else int(time.time())
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def dump_index(index: Index) -> str:
    """Stable JSON text of ``index`` (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(index.to_json(), indent=2, sort_keys=False, ensure_ascii=False) + "\n"
