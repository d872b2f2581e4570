"""Registry indexes (``index.json``): reading with strict checks, and building from gpacks.

Reading is done without pydantic on purpose: ``ggen market search`` parses indexes of tens of
thousands of packages on every call and must start fast. Every problem names the index and the
path of the bad field, e.g. ``packs["io.x"].versions["1.0.0"].sha256``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import marshal
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_cleanroom.safe_write import write_output

from .errors import RegistryIndexError
from .ids import ID_PATTERN

if TYPE_CHECKING:
    from .versions import Version

INDEX_NAME = "index.json"
INDEX_FORMAT = 1
_CACHE_FORMAT = "index1-cache4"
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
    #: The signed validation statement (a DSSE envelope as a JSON object), when published with one.
    validation: Mapping[str, Any] | None = None

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
        if self.validation is not None:
            data["validation"] = dict(self.validation)
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
    versions: Mapping[str, PackVersion] = field(default_factory=dict)
    #: :attr:`latest` as worked out when the index was parsed (saves loading semver to search).
    known_latest: str | None = field(default=None, repr=False, compare=False)

    def sorted_versions(self) -> list[Version]:
        """Versions, newest first."""
        from .versions import Version

        return sorted((Version.parse(v) for v in self.versions), reverse=True)

    @property
    def latest(self) -> str:
        """The newest version that is not a pre-release (or the newest at all)."""
        if self.known_latest is not None:
            return self.known_latest
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


def search_text(
    pid: str,
    name: str,
    description: str,
    tags: Iterable[str],
    keywords: Iterable[str],
    category: str = "",
) -> str:
    """The lowercase text a search query's words must all appear in (the category too)."""
    return " ".join((pid, name, description, category, *tags, *keywords)).lower()


@dataclass(frozen=True)
class Index:
    """A parsed index: ``packs`` by id."""

    packs: Mapping[str, PackEntry]
    updated: str = ""

    def matching(self, words: list[str]) -> Iterator[str]:
        """Ids of the packs whose :func:`search_text` contains every one of ``words``."""
        if isinstance(self.packs, PackTable):
            return self.packs.matching(words)
        return (
            pid
            for pid, e in self.packs.items()
            if all(
                w in search_text(pid, e.name, e.description, e.tags, e.keywords, e.category)
                for w in words
            )
        )

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
    if type(value) is not list or any(type(v) is not str for v in value):
        raise _fail(label, where, "expected a list of strings")
    return tuple(value)


_PACK_KEYS = frozenset(
    {"name", "description", "category", "tags", "keywords", "license", "authors", "homepage"}
    | {"downloads", "versions", "latest"}
)


def parse_index(text: str | bytes, label: str, *, cache: Path | None = None) -> Index:
    """Parse and check an index document; ``label`` (file or URL) prefixes every error.

    With ``cache`` (a directory), the checked metadata is kept in a compact binary form keyed by
    the document's sha256, so the next parse of the same bytes skips JSON decoding and checks.
    """
    raw_bytes = text.encode() if isinstance(text, str) else text
    slot = digest = None
    if cache is not None:
        digest = hashlib.sha256(raw_bytes).hexdigest()
        slot = cache / "parsed-index" / (hashlib.sha256(label.encode()).hexdigest()[:32] + ".bin")
        try:
            key, updated, ids, texts, rows = marshal.loads(slot.read_bytes())
            if key == f"{_CACHE_FORMAT}:{digest}" and len(ids) == len(texts) == len(rows):
                return Index(packs=PackTable(ids, texts, rows, label), updated=updated)
        except (OSError, ValueError, EOFError, TypeError):
            pass  # no cached form yet, or a damaged one: parse the document
    try:
        data = json.loads(raw_bytes)
    except RecursionError:
        raise RegistryIndexError(
            f"{label}: JSON nested too deeply to be an index; the index is corrupt or hostile"
        ) from None
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
    compact = {pid: _check_pack(pid, raw, label) for pid, raw in packs_raw.items()}
    updated = data.get("updated", "")
    updated = updated if isinstance(updated, str) else ""
    for row in compact.values():
        row.append(_latest(row[9]))
    ids = list(compact)
    texts = [search_text(pid, v[0], v[1], v[3], v[4], v[2]) for pid, v in compact.items()]
    if slot is not None:
        with contextlib.suppress(OSError):
            slot.parent.mkdir(parents=True, exist_ok=True)
            # One marshal blob per pack, decoded only for the packs a command uses (a search
            # over 10,000 packs decodes its hits); version entries stay JSON text inside it.
            rows = [marshal.dumps([*v[:9], json.dumps(v[9]), v[10]]) for v in compact.values()]
            key = f"{_CACHE_FORMAT}:{digest}"
            write_output(slot, marshal.dumps((key, updated, ids, texts, rows)))
    return Index(packs=PackTable(ids, texts, list(compact.values()), label), updated=updated)


def _latest(versions: Iterable[str]) -> str | None:
    """The newest stable version (or newest at all); ``None`` when one is not a version.

    An invalid version is reported, naming the field, when the pack's versions are used.
    """
    from .versions import Version

    parsed = []
    for text in versions:
        if not Version.is_valid(text):
            return None
        parsed.append(Version.parse(text))
    stable = [v for v in parsed if v.prerelease is None]
    return str(max(stable or parsed))


def _check_pack(pid: str, raw: Any, label: str) -> list[Any]:
    """Check one pack's metadata; return it as a list in :func:`_build`'s order."""
    where = f"packs[{pid!r}]"
    if not ID_PATTERN.match(pid):
        raise _fail(label, where, "not a reverse-DNS gpack id")
    if not isinstance(raw, dict):
        raise _fail(label, where, "expected an object")
    unknown = raw.keys() - _PACK_KEYS
    if unknown:
        raise _fail(label, where, f"unknown keys {sorted(unknown)}")
    versions_raw = raw.get("versions")
    if not isinstance(versions_raw, dict) or not versions_raw:
        raise _fail(label, f"{where}.versions", "missing or empty")
    downloads = raw.get("downloads", 0)
    if not isinstance(downloads, int) or downloads < 0:
        raise _fail(label, f"{where}.downloads", "expected a non-negative integer")
    return [
        _str(raw.get("name"), label, f"{where}.name", default=pid),
        _str(raw.get("description"), label, f"{where}.description", ""),
        _str(raw.get("category"), label, f"{where}.category", "general"),
        _strs(raw.get("tags"), label, f"{where}.tags"),
        _strs(raw.get("keywords"), label, f"{where}.keywords"),
        _str(raw.get("license"), label, f"{where}.license", ""),
        _strs(raw.get("authors"), label, f"{where}.authors"),
        _str(raw.get("homepage"), label, f"{where}.homepage", ""),
        downloads,
        versions_raw,
    ]


class PackTable(Mapping[str, PackEntry]):
    """The packs of a parsed index, each :class:`PackEntry` built the first time it is used.

    ``rows`` hold the checked metadata in :func:`_check_pack`'s order, as lists or (from the
    parsed-index cache) as marshal blobs of them; ``texts`` their :func:`search_text`. A search
    scans the texts and builds entries for its hits only.
    """

    def __init__(self, ids: list[str], texts: list[str], rows: list[Any], label: str) -> None:
        self._position = {pid: i for i, pid in enumerate(ids)}
        self._ids, self._texts, self._rows, self._label = ids, texts, rows, label
        self._entries: dict[str, PackEntry] = {}

    def __getitem__(self, pid: str) -> PackEntry:
        entry = self._entries.get(pid)
        if entry is None:
            row = self._rows[self._position[pid]]
            v = marshal.loads(row) if isinstance(row, bytes) else row
            entry = PackEntry(
                id=pid,
                name=v[0],
                description=v[1],
                category=v[2],
                tags=tuple(v[3]),
                keywords=tuple(v[4]),
                license=v[5],
                authors=tuple(v[6]),
                homepage=v[7],
                downloads=v[8],
                versions=LazyVersions(pid, v[9], self._label, f"packs[{pid!r}].versions"),
                known_latest=v[10],
            )
            self._entries[pid] = entry
        return entry

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, pid: object) -> bool:
        return pid in self._position

    def matching(self, words: list[str]) -> Iterator[str]:
        """Ids whose search text contains every one of ``words`` (all ids for none)."""
        texts = self._texts
        positions: Iterable[int] = range(len(texts))
        for word in words:  # one pass per word over the survivors of the previous one
            positions = [i for i in positions if word in texts[i]]
        ids = self._ids
        return (ids[i] for i in positions)


class LazyVersions(Mapping[str, PackVersion]):
    """The versions of one pack, each checked the first time it is used.

    Searching an index of tens of thousands of packs only needs their metadata; the version
    entries (archive, digest, dependencies) are validated when something resolves or installs
    them, with the same errors naming the index and the field.
    """

    def __init__(self, pid: str, raw: dict[str, Any] | str, label: str, where: str) -> None:
        self._pid, self._label, self._where = pid, label, where
        self._source = raw
        self._parsed: dict[str, PackVersion] = {}
        self._keys_checked = False

    @property
    def _raw(self) -> dict[str, Any]:
        if isinstance(self._source, str):  # from the parsed-index cache: JSON text
            self._source = json.loads(self._source)
        assert isinstance(self._source, dict)
        return self._source

    def __getitem__(self, version: str) -> PackVersion:
        found = self._parsed.get(version)
        if found is None:
            raw = self._raw[version]
            where = f"{self._where}[{version!r}]"
            found = _parse_version_entry(self._pid, version, raw, self._label, where)
            self._parsed[version] = found
        return found

    def __iter__(self) -> Iterator[str]:
        if not self._keys_checked:
            from .versions import is_version

            for version in self._raw:
                if not is_version(version):
                    raise _fail(
                        self._label, f"{self._where}[{version!r}]", "not a semantic version"
                    )
            self._keys_checked = True
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


def _parse_version_entry(pid: str, ver: str, raw: Any, label: str, where: str) -> PackVersion:
    from .versions import is_version, parse_range

    if not is_version(ver):
        raise _fail(label, where, "not a semantic version")
    if not isinstance(raw, dict):
        raise _fail(label, where, "expected an object")
    archive = raw.get("archive")
    if not isinstance(archive, str) or not archive:
        raise _fail(label, f"{where}.archive", "missing")
    if not archive.isprintable() or len(archive) > 1024:
        raise _fail(
            label,
            f"{where}.archive",
            f"{archive[:80]!r} holds a control character or is too long: an archive location "
            "is a printable path or URL",
        )
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
    validation = raw.get("validation")
    if validation is not None and not (
        isinstance(validation, dict) and {"payloadType", "payload", "signatures"} <= set(validation)
    ):
        raise _fail(label, f"{where}.validation", "expected a DSSE envelope object")
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
        validation=validation,
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
        from .versions import Version

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
