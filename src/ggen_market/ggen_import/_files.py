"""Reading a ggen package's tree and copying it into a staging directory, refusing what is unsafe.

Only regular files and directories are copied; a link is copied as the file it names when that
lies inside the package, any other link or special file is a problem naming the path.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from pytest_cleanroom.config_errors.positions import toml_string

from ..manifest import MANIFEST_NAME, MAX_WALK_ENTRIES
from ._convert import TEMPLATE_SUFFIXES, PackageFiles

#: ggen's own gpack.toml is kept under this name beside the one written for this marketplace.
GGEN_MANIFEST_COPY = "gpack.ggen.toml"


def package_files(root: Path) -> tuple[PackageFiles, list[str]]:
    """The package's files (links inside it count as files) and the problems found."""
    real_root = root.resolve()
    files: list[str] = []
    body_only: set[str] = set()
    problems: list[str] = []
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        seen += len(dirnames) + len(filenames)
        if seen > MAX_WALK_ENTRIES:
            return PackageFiles([]), [f"{root}: more than {MAX_WALK_ENTRIES} entries"]
        base = Path(dirpath)
        for name in sorted(filenames) + [d for d in dirnames if (base / d).is_symlink()]:
            path = base / name
            rel = path.relative_to(root).as_posix()
            problem = _unsafe(path, real_root)
            if problem:
                problems.append(f"{rel}: {problem}")
                continue
            files.append(rel)
            if rel.endswith(TEMPLATE_SUFFIXES) and not _has_front_matter(path):
                body_only.add(rel)
    return PackageFiles(sorted(files), frozenset(body_only)), problems


def _unsafe(path: Path, real_root: Path) -> str | None:
    try:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            target = path.resolve()
            if not target.is_relative_to(real_root):
                return "a link out of the package; put the file it names into the package"
            info = target.stat()
    except (OSError, RuntimeError) as exc:  # a dangling or looping link
        return f"cannot be read ({exc})"
    if stat.S_ISDIR(info.st_mode):
        return "a link to a directory; copy the directory into the package instead"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a device, FIFO or socket is never imported)"
    return None


def _has_front_matter(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.readline().rstrip(b"\r\n") == b"---"


def stage_package(
    root: Path, files: list[str], dest: Path, manifest_text: str, added: dict[str, str]
) -> None:
    """Copy ``files`` of ``root`` into the new directory ``dest`` and write the manifest there."""
    dest.mkdir()
    for rel in files:
        target = dest / (GGEN_MANIFEST_COPY if rel == MANIFEST_NAME else rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, target)
        if os.stat(root / rel).st_mode & 0o111:
            target.chmod(0o755)
    for rel, text in added.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text, encoding="utf-8")
    (dest / MANIFEST_NAME).write_text(manifest_text, encoding="utf-8")


def manifest_toml(manifest: dict[str, object]) -> str:
    """The ``gpack.toml`` text of ``manifest`` (tables of strings, lists and string tables)."""
    lines = ["# Imported from a ggen package by `ggen market import`.", ""]
    for table, content in manifest.items():
        assert isinstance(content, dict)
        if not content:
            continue
        scalars = {k: v for k, v in content.items() if not isinstance(v, dict)}
        nested = {k: v for k, v in content.items() if isinstance(v, dict)}
        lines.append(f"[{table}]")
        lines += [f"{_key(k)} = {_value(v)}" for k, v in scalars.items()]
        lines.append("")
        for key, sub in nested.items():
            lines.append(f"[{table}.{_key(key)}]")
            lines += [f"{_key(k)} = {_value(v)}" for k, v in sub.items()]
            lines.append("")
    return "\n".join(lines)


def _key(key: str) -> str:
    bare = key.replace("-", "").replace("_", "").isalnum() and key.isascii()
    return key if bare else toml_string(key)


def _value(value: object) -> str:
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r} in a gpack.toml")
