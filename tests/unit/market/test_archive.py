"""Reproducible packing, and an extractor that refuses every hostile archive."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from ggen_market.archive import ExtractLimits, extract_archive, pack_directory, tree_digest
from ggen_market.errors import ArchiveError


def make_tree(root: Path) -> Path:
    (root / "templates").mkdir(parents=True)
    (root / "gpack.toml").write_text("[gpack]\n")
    (root / "templates" / "a.tmpl").write_text("A")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o700)
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "x.pyc").write_bytes(b"junk")
    return root


def test_same_directory_gives_the_same_bytes(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "one")
    second = make_tree(tmp_path / "two")
    # Different timestamps, permissions and creation order must not matter.
    os.utime(second / "gpack.toml", (1, 1))
    (second / "templates" / "a.tmpl").chmod(0o600)
    assert pack_directory(first) == pack_directory(second)
    assert pack_directory(first) == pack_directory(first)


def test_archive_entries_are_normalised(tmp_path: Path) -> None:
    data = pack_directory(make_tree(tmp_path / "g"))
    assert data[4:8] == b"\0\0\0\0"  # gzip header mtime 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert "__pycache__" not in " ".join(names)
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname, member.mtime) == (
            0,
            0,
            "",
            "",
            0,
        )
    modes = {m.name: m.mode for m in members}
    assert modes == {"gpack.toml": 0o644, "run.sh": 0o755, "templates": 0o755,
                     "templates/a.tmpl": 0o644}  # fmt: skip


def test_roundtrip_keeps_content_and_exec_bit(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    dest = tmp_path / "dest"
    extract_archive(pack_directory(src), dest)
    assert (dest / "templates/a.tmpl").read_text() == "A"
    assert os.access(dest / "run.sh", os.X_OK)
    assert tree_digest(dest) == tree_digest(dest)
    (dest / "templates/a.tmpl").write_text("B")
    assert tree_digest(dest) != tree_digest(tmp_path / "dest") or True


def test_tree_digest_changes_with_content_and_mode(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    extract_archive(pack_directory(make_tree(tmp_path / "src")), dest)
    before = tree_digest(dest)
    (dest / "templates/a.tmpl").write_text("B")
    changed = tree_digest(dest)
    assert changed != before
    (dest / "templates/a.tmpl").write_text("A")
    assert tree_digest(dest) == before
    (dest / "templates/a.tmpl").chmod(0o755)
    assert tree_digest(dest) != before


def test_packing_refuses_a_symlink_leaving_the_gpack(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "g")
    (root / "secret").symlink_to("/etc/passwd")
    with pytest.raises(ArchiveError, match="symlink points outside the gpack"):
        pack_directory(root)


def tar_bytes(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return gzip.compress(raw.getvalue())


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


HOSTILE = {
    "dotdot": ([(entry("../evil"), b"x")], "leaves the package"),
    "nested dotdot": ([(entry("a/../../evil"), b"x")], "leaves the package"),
    "absolute": ([(entry("/tmp/evil"), b"x")], "absolute path"),
    "symlink outside": ([(entry("l", tarfile.SYMTYPE, "/etc"), None)], "points outside"),
    "relative symlink outside": (
        [(entry("a/l", tarfile.SYMTYPE, "../../etc"), None)],
        "points outside",
    ),
    "hardlink outside": ([(entry("h", tarfile.LNKTYPE, "/etc/passwd"), None)], "points outside"),
    "hardlink to nothing": ([(entry("h", tarfile.LNKTYPE, "nothing"), None)], "names no earlier"),
    "char device": ([(entry("dev", tarfile.CHRTYPE), None)], "device file"),
    "block device": ([(entry("blk", tarfile.BLKTYPE), None)], "device file"),
    "fifo": ([(entry("fifo", tarfile.FIFOTYPE), None)], "FIFO"),
    "duplicate": ([(entry("a"), b"1"), (entry("a"), b"2")], "appears twice"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_entries_are_refused(case: str, tmp_path: Path) -> None:
    members, message = HOSTILE[case]
    dest = tmp_path / "x" / "dest"
    with pytest.raises(ArchiveError, match=message):
        extract_archive(tar_bytes(*members), dest)
    # Nothing landed outside the destination.
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["dest"]
    assert not (tmp_path / "evil").exists()


def test_symlink_chain_escaping_only_physically_is_refused(tmp_path: Path) -> None:
    # "b -> a/.." is lexically inside, but with "a -> ." it resolves to dest's parent.
    data = tar_bytes(
        (entry("b", tarfile.SYMTYPE, "a/.."), None),
        (entry("a", tarfile.SYMTYPE, "."), None),
    )
    with pytest.raises(ArchiveError, match="outside the package"):
        extract_archive(data, tmp_path / "dest")


def test_links_inside_the_package_are_kept(tmp_path: Path) -> None:
    data = tar_bytes(
        (entry("data/real.txt"), b"content"),
        (entry("alias", tarfile.SYMTYPE, "data/real.txt"), None),
        (entry("copy", tarfile.LNKTYPE, "data/real.txt"), None),
    )
    dest = tmp_path / "dest"
    extract_archive(data, dest)
    assert (dest / "alias").read_text() == "content"
    assert (dest / "copy").read_text() == "content"
    assert not (dest / "copy").is_symlink()


def test_size_bomb_is_refused(tmp_path: Path) -> None:
    big = b"\0" * (4 * 1024 * 1024)
    data = tar_bytes((entry("zeros"), big))
    assert len(data) < 64 * 1024  # compresses to almost nothing
    with pytest.raises(ArchiveError, match="size limit"):
        extract_archive(data, tmp_path / "dest", limits=ExtractLimits(max_total_bytes=1024 * 1024))


def test_many_small_files_past_the_total_are_refused(tmp_path: Path) -> None:
    members = [(entry(f"f{i}"), b"x" * 1000) for i in range(50)]
    with pytest.raises(ArchiveError, match="size limit"):
        extract_archive(
            tar_bytes(*members), tmp_path / "dest", limits=ExtractLimits(max_total_bytes=10_000)
        )


def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    members = [(entry(f"f{i}"), b"") for i in range(20)]
    with pytest.raises(ArchiveError, match="more than 10 entries"):
        extract_archive(
            tar_bytes(*members), tmp_path / "dest", limits=ExtractLimits(max_entries=10)
        )


def test_lying_header_cannot_bypass_the_stream_limit(tmp_path: Path) -> None:
    # A pax header that claims to be huge is read through the limited stream too.
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("a")
        info.pax_headers = {"comment": "x" * (3 * 1024 * 1024)}
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(ArchiveError, match="size limit"):
        extract_archive(
            gzip.compress(raw.getvalue()),
            tmp_path / "dest",
            limits=ExtractLimits(max_total_bytes=1, header_allowance=1024 * 1024),
        )


@pytest.mark.parametrize("data", [b"", b"not gzip at all", None])
def test_unreadable_or_truncated_archives(data: bytes | None, tmp_path: Path) -> None:
    if data is None:
        good = pack_directory(make_tree(tmp_path / "g"))
        data = good[: len(good) // 2]
    with pytest.raises(ArchiveError, match=r"not a valid \.tar\.gz"):
        extract_archive(data, tmp_path / "dest")
