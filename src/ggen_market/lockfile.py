"""``ggen.lock``: the exact versions, sources and digests a project installed.

The lock is TOML, written by hand in a fixed order so the same install gives the same bytes, and
always atomically (temporary file in the same directory, then ``os.replace``). It is also the
map later tools use to find installed gpacks: ``.ggen/packages/<id>/<version>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_cleanroom.config_errors.errors import TomlSyntaxError
from pytest_cleanroom.config_errors.suggest import did_you_mean
from pytest_cleanroom.config_errors.toml import parse_toml

from .errors import LockfileError
from .ids import ID_PATTERN
from .versions import is_version, parse_range

LOCK_NAME = "ggen.lock"
STATE_DIR = ".ggen"
LOCK_FORMAT = 1


@dataclass(frozen=True)
class LockedPackage:
    """One installed gpack, pinned."""

    id: str
    version: str
    source: str
    archive: str
    sha256: str
    tree_sha256: str
    dependencies: tuple[str, ...] = ()
    test_pack: bool = False

    def install_dir(self, project: Path) -> Path:
        """Where the package lives in ``project``."""
        return package_dir(project, self.id, self.version)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "source": self.source,
            "archive": self.archive,
            "sha256": self.sha256,
            "tree_sha256": self.tree_sha256,
            "dependencies": list(self.dependencies),
            "test_pack": self.test_pack,
        }


@dataclass(frozen=True)
class Lockfile:
    """``requires``: what the user asked for (id -> range); ``packages``: what that resolved to."""

    requires: dict[str, str] = field(default_factory=dict)
    packages: dict[str, LockedPackage] = field(default_factory=dict)

    def render(self) -> str:
        """The TOML text of the lock, in a fixed order."""
        out = [
            "# ggen.lock: written by `ggen market`; pins exact versions, sources and digests.",
            "# Commit it. Do not edit by hand.",
            f"format = {LOCK_FORMAT}",
            "",
            "[requires]",
        ]
        out += [f"{_q(pid)} = {_q(self.requires[pid])}" for pid in sorted(self.requires)]
        for pid in sorted(self.packages):
            pkg = self.packages[pid]
            deps = ", ".join(_q(d) for d in pkg.dependencies)
            out += [
                "",
                "[[package]]",
                f"id = {_q(pkg.id)}",
                f"version = {_q(pkg.version)}",
                f"source = {_q(pkg.source)}",
                f"archive = {_q(pkg.archive)}",
                f"sha256 = {_q(pkg.sha256)}",
                f"tree_sha256 = {_q(pkg.tree_sha256)}",
                f"dependencies = [{deps}]",
                f"test_pack = {'true' if pkg.test_pack else 'false'}",
            ]
        return "\n".join(out) + "\n"


def _q(text: str) -> str:
    # JSON string escapes are a subset of TOML basic-string escapes; TOML also forbids a raw DEL.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def package_dir(project: Path, pack_id: str, version: str) -> Path:
    """``<project>/.ggen/packages/<id>/<version>``."""
    return project / STATE_DIR / "packages" / pack_id / version


def read_lock(path: Path) -> Lockfile | None:
    """The lock at ``path``, ``None`` when there is none; :class:`LockfileError` if malformed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise LockfileError(
            f"{path}: not UTF-8 text (byte {exc.start}); restore it from version control"
        ) from None
    try:
        data = parse_toml(text, path)
    except TomlSyntaxError as exc:
        raise LockfileError(
            f"{path}: not valid TOML ({exc.reason}{exc.at}); restore it from version control"
        ) from None
    if data.get("format") != LOCK_FORMAT:
        raise LockfileError(f"{path}: format: expected {LOCK_FORMAT}, got {data.get('format')!r}")
    requires = data.get("requires", {})
    if not isinstance(requires, dict):
        raise LockfileError(f"{path}: [requires]: expected a table of id = range")
    for pid, rng in requires.items():
        if not ID_PATTERN.match(pid) or not isinstance(rng, str):
            raise LockfileError(f"{path}: [requires] {pid!r}: expected a gpack id = range")
        parse_range(rng, what=f"{path}: [requires] {pid}")
    packages: dict[str, LockedPackage] = {}
    raw_packages = data.get("package", [])
    if not isinstance(raw_packages, list):
        raise LockfileError(f"{path}: [[package]]: expected an array of tables")
    for number, raw in enumerate(raw_packages, start=1):
        packages_entry = _read_package(raw, f"{path}: [[package]] #{number}")
        if packages_entry.id in packages:
            raise LockfileError(f"{path}: {packages_entry.id} is pinned twice")
        packages[packages_entry.id] = packages_entry
    for pid in requires:
        if pid not in packages:
            raise LockfileError(f"{path}: [requires] {pid} has no [[package]] entry")
    return Lockfile(requires=dict(requires), packages=packages)


_PACKAGE_STRS = ("id", "version", "source", "archive", "sha256", "tree_sha256")
_PACKAGE_KEYS = (*_PACKAGE_STRS, "dependencies", "test_pack")


def _read_package(raw: Any, where: str) -> LockedPackage:
    if not isinstance(raw, dict):
        raise LockfileError(f"{where}: expected a table")
    for key in raw:
        if key not in _PACKAGE_KEYS:
            hint = did_you_mean(key, _PACKAGE_KEYS, aside=True)
            raise LockfileError(f"{where}: {key}: unknown key{hint}")
    for key in _PACKAGE_STRS:
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise LockfileError(f"{where}: {key}: missing or not a string")
    if not ID_PATTERN.match(raw["id"]):
        raise LockfileError(f"{where}: id: {raw['id']!r} is not a gpack id")
    if not is_version(raw["version"]):
        raise LockfileError(f"{where}: version: {raw['version']!r} is not a semantic version")
    deps = raw.get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) and "@" in d for d in deps):
        raise LockfileError(f"{where}: dependencies: expected a list of 'id@version'")
    return LockedPackage(
        id=raw["id"],
        version=raw["version"],
        source=raw["source"],
        archive=raw["archive"],
        sha256=raw["sha256"],
        tree_sha256=raw["tree_sha256"],
        dependencies=tuple(deps),
        test_pack=bool(raw.get("test_pack", False)),
    )
