"""The artifact of one task, as it travels to and from a remote cache.

Like turbo's: a zstd-compressed tar (GNU headers, owner 0, a fixed mtime, directories before the
files in them) of the task's outputs by their paths relative to the task's directory. ggen adds
two members under ``.ggen/`` (a directory no output can be in): ``.ggen/log``, the task's output
replayed on a hit, and ``.ggen/artifact.json``, the manifest with every file's sha256, size and
mode. Unpacking trusts nothing: only plain relative names, only regular files and directories,
no setuid/setgid/sticky bits, nothing twice, nothing the manifest does not list, every digest
checked, the expanded size bounded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cache import Entry

KIND = "ggen-lifecycle-artifact"
FORMAT = 1
MANIFEST = ".ggen/artifact.json"
LOG = ".ggen/log"
MTIME = 946684800  # 2000-01-01, a fixed time so that the same outputs give the same archive
SPECIAL_BITS = 0o7000


class ArtifactError(Exception):
    """An artifact that is not one this version can trust: the message says why."""


@dataclass(frozen=True)
class Unpacked:
    """A verified artifact laid out under ``tree`` (outputs) with its ``log`` file."""

    tree: Path
    log: Path
    outputs: list[str]
    info: dict[str, Any]


def _member(
    name: str, size: int = 0, mode: int = 0o644, directory: bool = False
) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.size = size
    member.mode = mode
    member.mtime = MTIME
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    if directory:
        member.type = tarfile.DIRTYPE
    return member


def _directories(names: list[str]) -> list[str]:
    found: set[str] = set()
    for name in names:
        parts = name.split("/")[:-1]
        found.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(found)


def pack(entry: Entry) -> bytes:
    """The artifact (compressed bytes) of a verified local cache entry."""
    import zstandard

    log_bytes = entry.log_path.read_bytes()
    manifest = {
        "kind": KIND,
        "format": FORMAT,
        "key": entry.key,
        "outputs": entry.outputs,
        "log": {"sha256": hashlib.sha256(log_bytes).hexdigest(), "size": len(log_bytes)},
        "phase": entry.meta.get("phase"),
        "workspace": entry.meta.get("workspace"),
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    outputs = sorted(entry.outputs)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for directory in _directories([MANIFEST, *outputs]):
            tar.addfile(_member(directory + "/", mode=0o755, directory=True))
        tar.addfile(_member(MANIFEST, len(manifest_bytes)), io.BytesIO(manifest_bytes))
        tar.addfile(_member(LOG, len(log_bytes)), io.BytesIO(log_bytes))
        for rel in outputs:
            mode = int(entry.outputs[rel].get("mode", 0o644)) & 0o777
            path = Path(entry.path, "out", rel)
            with path.open("rb") as handle:
                tar.addfile(_member(rel, path.stat().st_size, mode), handle)
    return zstandard.ZstdCompressor(level=3).compress(raw.getvalue())


def _plain_name(name: str) -> str:
    """``name`` without a trailing slash, if it is a plain relative path; else ArtifactError."""
    stripped = name[:-1] if name.endswith("/") else name
    parts = stripped.split("/")
    if (
        not stripped
        or stripped.startswith("/")
        or "\\" in stripped
        or "\0" in stripped
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise ArtifactError(f"member {name!r} is not a plain relative path")
    return stripped


def _decompress(body: bytes, limit: int) -> bytes:
    import zstandard

    out = io.BytesIO()
    try:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body)) as reader:
            while block := reader.read(1024 * 1024):
                if out.tell() + len(block) > limit:
                    raise ArtifactError(f"expands past {limit} bytes")
                out.write(block)
    except zstandard.ZstdError as exc:
        raise ArtifactError(f"not a zstd-compressed archive ({exc})") from None
    return out.getvalue()


def _write_new(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(target, flags, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _extract(raw: bytes, tree: Path) -> dict[str, bytes]:
    """Write every regular member under ``tree``; return the small ``.ggen/`` members' bytes."""
    seen: set[str] = set()
    special: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for member in tar:
                name = _plain_name(member.name)
                if name in seen:
                    raise ArtifactError(f"member {name!r} appears twice")
                seen.add(name)
                if member.mode & SPECIAL_BITS:
                    raise ArtifactError(f"member {name!r} has setuid, setgid or sticky bits")
                if member.isdir():
                    continue
                if not member.isreg():
                    raise ArtifactError(f"member {name!r} is a link or special file")
                handle = tar.extractfile(member)
                data = handle.read() if handle is not None else b""
                if name in (MANIFEST, LOG):
                    special[name] = data
                elif name.split("/")[0] == ".ggen":
                    raise ArtifactError(f"member {name!r} is not one ggen writes")
                else:
                    _write_new(tree / name, data)
    except (tarfile.TarError, EOFError) as exc:
        raise ArtifactError(f"not a tar archive ({exc})") from None
    return special


def _manifest(special: dict[str, bytes], key: str) -> dict[str, Any]:
    try:
        manifest = json.loads(special[MANIFEST])
    except KeyError:
        raise ArtifactError(f"no {MANIFEST}") from None
    except ValueError as exc:
        raise ArtifactError(f"{MANIFEST} is not JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND:
        raise ArtifactError("not a ggen lifecycle artifact")
    if manifest.get("format") != FORMAT or manifest.get("key") != key:
        raise ArtifactError("made for another key or format")
    if not isinstance(manifest.get("outputs"), dict) or not isinstance(manifest.get("log"), dict):
        raise ArtifactError(f"{MANIFEST} lacks outputs or log")
    return manifest


def _check_file(path: Path, info: Any, name: str) -> int:
    """Compare ``path`` with its manifest record; the mode to give it."""
    if not isinstance(info, dict):
        raise ArtifactError(f"bad manifest record for {name!r}")
    data = path.read_bytes()
    if len(data) != info.get("size") or hashlib.sha256(data).hexdigest() != info.get("sha256"):
        raise ArtifactError(f"{name!r} does not match its manifest digest")
    mode = info.get("mode", 0o644)
    if not isinstance(mode, int) or mode & ~0o777:
        raise ArtifactError(f"{name!r} has a mode outside 0o777 in the manifest")
    return mode


def unpack(body: bytes, key: str, staging: Path, limit: int) -> Unpacked:
    """Verify and lay out the artifact ``body`` for ``key`` under ``staging`` (a new, empty
    directory the caller removes); :class:`ArtifactError` says what is wrong with it."""
    tree = staging / "tree"
    tree.mkdir(parents=True)
    special = _extract(_decompress(body, limit), tree)
    manifest = _manifest(special, key)
    outputs: dict[str, Any] = manifest["outputs"]
    present = {p.relative_to(tree).as_posix() for p in tree.rglob("*") if not p.is_dir()}
    if present != {_plain_name(rel) for rel in outputs}:
        raise ArtifactError("its files are not exactly those its manifest lists")
    for rel, info in outputs.items():
        os.chmod(tree / rel, _check_file(tree / rel, info, rel))
    log = staging / "log"
    _write_new(log, special.get(LOG, b""))
    _check_file(log, manifest["log"], LOG)
    info = {"phase": manifest.get("phase"), "workspace": manifest.get("workspace")}
    return Unpacked(tree=tree, log=log, outputs=sorted(outputs), info=info)
