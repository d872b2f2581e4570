"""Remote-cache artifacts, signatures and settings: what is packed, what unpacking refuses."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
import zstandard

from ggen_lifecycle.cache import Cache
from ggen_lifecycle.errors import ConfigError
from ggen_lifecycle.model import RemoteCacheSpec
from ggen_lifecycle.remote_cache.artifact import ArtifactError, pack, unpack
from ggen_lifecycle.remote_cache.settings import resolve
from ggen_lifecycle.remote_cache.signature import make_tag, tag_matches

KEY = "ab" * 32


def stored_entry(tmp_path: Path) -> Cache:
    work = tmp_path / "work"
    (work / "dist" / "bin").mkdir(parents=True)
    (work / "dist" / "out.txt").write_text("output\n")
    (work / "dist" / "bin" / "tool").write_text("#!/bin/sh\n")
    (work / "dist" / "bin" / "tool").chmod(0o755)
    (work / "log").write_bytes(b"line 1\nline 2\n")
    cache = Cache(tmp_path / "cache", 10**9)
    cache.store(KEY, work, ["dist/out.txt", "dist/bin/tool"], work / "log", {"phase": "build"})
    return cache


def test_an_artifact_unpacks_to_the_same_files_modes_and_log(tmp_path: Path) -> None:
    cache = stored_entry(tmp_path)
    entry = cache.lookup(KEY)
    assert entry is not None
    body = pack(entry)
    assert body == pack(entry)  # the same outputs give the same bytes
    unpacked = unpack(body, KEY, tmp_path / "staging", 10**8)
    assert unpacked.outputs == ["dist/bin/tool", "dist/out.txt"]
    assert (unpacked.tree / "dist" / "out.txt").read_text() == "output\n"
    assert (unpacked.tree / "dist" / "bin" / "tool").stat().st_mode & 0o777 == 0o755
    assert unpacked.log.read_bytes() == b"line 1\nline 2\n"
    assert unpacked.info["phase"] == "build"


def test_the_archive_is_a_zstd_tar_like_turbos(tmp_path: Path) -> None:
    entry = stored_entry(tmp_path).lookup(KEY)
    assert entry is not None
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(pack(entry))).read()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names.index("dist") < names.index("dist/bin") < names.index("dist/bin/tool")
    assert {".ggen/artifact.json", ".ggen/log", "dist/out.txt", "dist/bin/tool"} <= set(names)
    assert {(m.uid, m.gid, m.uname, m.mtime) for m in members} == {(0, 0, "", 946684800)}


def test_an_artifact_for_another_key_is_refused(tmp_path: Path) -> None:
    entry = stored_entry(tmp_path).lookup(KEY)
    assert entry is not None
    with pytest.raises(ArtifactError, match="another key"):
        unpack(pack(entry), "cd" * 32, tmp_path / "staging", 10**8)


def artifact(members: list[tuple[tarfile.TarInfo, bytes]], outputs: dict[str, bytes]) -> bytes:
    manifest = {
        "kind": "ggen-lifecycle-artifact",
        "format": 1,
        "key": KEY,
        "outputs": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "mode": 0o644}
            for name, data in outputs.items()
        },
        "log": {"sha256": hashlib.sha256(b"").hexdigest(), "size": 0},
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        head = json.dumps(manifest).encode()
        for member, data in [(tarfile.TarInfo(".ggen/artifact.json"), head), *members]:
            member.size = len(data) if member.isreg() else 0
            tar.addfile(member, io.BytesIO(data))
    return zstandard.ZstdCompressor().compress(raw.getvalue())


def member(name: str, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    for field, value in fields.items():
        setattr(info, field, value)
    return info


HOSTILE = {
    "parent": ([(member("../x"), b"x")], {"../x": b"x"}, "plain relative"),
    "absolute": ([(member("/tmp/x"), b"x")], {"/tmp/x": b"x"}, "plain relative"),
    "dot": ([(member("a/./x"), b"x")], {"a/./x": b"x"}, "plain relative"),
    "symlink": ([(member("x", type=tarfile.SYMTYPE, linkname="/etc"), b"")], {}, "link"),
    "hardlink": ([(member("x", type=tarfile.LNKTYPE, linkname="../y"), b"")], {}, "link"),
    "device": ([(member("x", type=tarfile.CHRTYPE), b"")], {}, "special"),
    "fifo": ([(member("x", type=tarfile.FIFOTYPE), b"")], {}, "special"),
    "setuid": ([(member("x", mode=0o4755), b"x")], {"x": b"x"}, "setuid"),
    "setgid-dir": ([(member("d", type=tarfile.DIRTYPE, mode=0o2755), b"")], {}, "setuid"),
    "twice": ([(member("x"), b"x"), (member("x"), b"y")], {"x": b"y"}, "twice"),
    "unlisted": ([(member("x"), b"x"), (member("extra"), b"e")], {"x": b"x"}, "exactly"),
    "missing": ([(member("x"), b"x")], {"x": b"x", "y": b"y"}, "exactly"),
    "altered": ([(member("x"), b"changed")], {"x": b"original"}, "digest"),
    "own-dir": ([(member(".ggen/hooks"), b"x")], {}, "not one ggen writes"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_unpacking_refuses_hostile_artifacts_and_writes_only_in_staging(
    tmp_path: Path, case: str
) -> None:
    members, outputs, reason = HOSTILE[case]
    staging = tmp_path / "area" / "staging"
    with pytest.raises(ArtifactError, match=reason):
        unpack(artifact(members, outputs), KEY, staging, 10**8)
    outside = {p for p in tmp_path.rglob("*")} - {p for p in staging.rglob("*")}
    assert outside == {tmp_path / "area", staging}


def test_garbage_and_bombs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a zstd"):
        unpack(b"\x00garbage" * 100, KEY, tmp_path / "a", 10**8)
    bomb = zstandard.ZstdCompressor().compress(b"\0" * 50_000_000)
    with pytest.raises(ArtifactError, match="expands past 1000000 bytes"):
        unpack(bomb, KEY, tmp_path / "b", 1_000_000)
    not_tar = zstandard.ZstdCompressor().compress(b"hello" * 1000)
    with pytest.raises(ArtifactError, match=r"not a tar|no \.ggen/artifact\.json"):
        unpack(not_tar, KEY, tmp_path / "c", 10**8)


def test_a_tag_is_turbos_hmac_over_key_team_id_and_body() -> None:
    # turbo 2's construction (HMAC-SHA256 over hash, team id, body; padded base64). The lifecycle
    # benchmark checks a tag that a real turbo stored on the real server with tag_matches.
    import base64
    import hmac

    body = b"artifact bytes"
    expected = hmac.new(b"k", b"76d6f3f071356d39" + b"" + body, hashlib.sha256).digest()
    assert make_tag(b"k", "76d6f3f071356d39", "", body) == base64.b64encode(expected).decode()


def test_signature_binds_key_team_and_bytes() -> None:
    tag = make_tag(b"secret", KEY, "team", b"body")
    assert tag.endswith("=")  # standard base64 with padding, as turbo 2 writes it
    assert tag_matches(b"secret", KEY, "team", b"body", tag)
    assert tag_matches(b"secret", KEY, "team", b"body", tag.rstrip("="))  # as turbo 1 wrote it
    assert not tag_matches(b"other", KEY, "team", b"body", tag)
    assert not tag_matches(b"secret", "cd" * 32, "team", b"body", tag)
    assert not tag_matches(b"secret", KEY, "other-team", b"body", tag)
    assert not tag_matches(b"secret", KEY, "team", b"body!", tag)
    assert not tag_matches(b"secret", KEY, "team", b"body", "not base64 !")


def test_settings_follow_turbos_variables_over_make_toml() -> None:
    spec = RemoteCacheSpec(url="http://file:1", team="file-team", timeout=5)
    settings, problem = resolve(
        spec,
        {
            "TURBO_API": "http://env:2/",
            "TURBO_TOKEN": "t",
            "TURBO_TEAM": "env-team",
            "TURBO_REMOTE_CACHE_SIGNATURE_KEY": "k",
            "TURBO_REMOTE_CACHE_TIMEOUT": "3",
            "TURBO_REMOTE_CACHE_READ_ONLY": "true",
        },
    )
    assert problem is None
    assert settings is not None
    assert (settings.url, settings.team, settings.token) == ("http://env:2", "env-team", "t")
    assert (settings.mode, settings.timeout, settings.signature_key) == ("read-only", 3.0, b"k")
    assert resolve(spec, {"GGEN_REMOTE_CACHE": "off"}) == (None, None)
    assert resolve(RemoteCacheSpec(), {}) == (None, None)


def test_signature_required_without_a_key_leaves_the_remote_unused() -> None:
    settings, problem = resolve(RemoteCacheSpec(url="http://x:1", signature=True), {})
    assert settings is None
    assert problem is not None
    assert "TURBO_REMOTE_CACHE_SIGNATURE_KEY is not set" in problem


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"GGEN_REMOTE_CACHE": "sometimes"}, "GGEN_REMOTE_CACHE"),
        ({"TURBO_REMOTE_CACHE_TIMEOUT": "soon"}, "TURBO_REMOTE_CACHE_TIMEOUT"),
        ({"TURBO_REMOTE_CACHE_READ_ONLY": "maybe"}, "TURBO_REMOTE_CACHE_READ_ONLY"),
        ({"TURBO_API": "ftp://x"}, "TURBO_API"),
    ],
)
def test_a_bad_variable_is_one_error_naming_it(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        resolve(RemoteCacheSpec(url="http://x:1"), env)
