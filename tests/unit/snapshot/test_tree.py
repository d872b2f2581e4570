"""The workspace tree view: what it shows, what it hides, and its stability."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from pytest_cleanroom.snapshot.normalise import Normaliser
from pytest_cleanroom.snapshot.tree import workspace_tree


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_tree_lists_dirs_files_links_with_modes_digests_and_text(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir(mode=0o750)
    (tmp_path / "src").chmod(0o750)
    (tmp_path / "src" / "app.py").write_text("print('hi')\nprint('bye')\n")
    (tmp_path / "src" / "app.py").chmod(0o644)
    (tmp_path / "run.sh").write_text("#!/bin/sh\necho ok")
    (tmp_path / "run.sh").chmod(0o755)
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01\x02")
    (tmp_path / "blob.bin").chmod(0o600)
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "empty").chmod(0o644)
    (tmp_path / "latest").symlink_to("src/app.py")
    app = b"print('hi')\nprint('bye')\n"
    blob, script = b"\x00\x01\x02", b"#!/bin/sh\necho ok"
    assert workspace_tree(tmp_path) == (
        f"file 0600 blob.bin (3 bytes, sha256 {sha(blob)}) [binary]\n"
        f"file 0644 empty (0 bytes, sha256 {sha(b'')})\n"
        "link      latest -> src/app.py\n"
        f"file 0755 run.sh ({len(script)} bytes, sha256 {sha(script)})\n"
        "  | #!/bin/sh\n"
        "  | echo ok\n"
        "  \\ no newline at end of file\n"
        "dir  0750 src\n"
        f"file 0644 src/app.py ({len(app)} bytes, sha256 {sha(app)})\n"
        "  | print('hi')\n"
        "  | print('bye')\n"
    )


def test_large_files_show_only_their_digest(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("x" * 5000)
    (tmp_path / "big.txt").chmod(0o644)
    tree = workspace_tree(tmp_path, max_text_bytes=4096)
    assert tree == (
        f"file 0644 big.txt (5000 bytes, sha256 {sha(b'x' * 5000)}) [over 4096 bytes, not shown]\n"
    )


def test_caches_are_excluded_by_default_and_patterns_can_be_given(tmp_path: Path) -> None:
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\x00")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "out.o").write_bytes(b"\x00")
    (tmp_path / "keep.txt").write_text("k\n")
    assert "__pycache__" not in workspace_tree(tmp_path)
    tree = workspace_tree(tmp_path, exclude=["build"])
    assert "build" not in tree
    assert "__pycache__" in tree  # an explicit exclude list replaces the default
    assert "keep.txt" in tree


def test_normaliser_rewrites_text_and_its_digest_is_marked(tmp_path: Path) -> None:
    (tmp_path / "log.txt").write_text(f"wrote {tmp_path}/out in 0.5s\n")
    (tmp_path / "log.txt").chmod(0o644)
    norm = Normaliser.for_run(workspace=tmp_path)
    expected = b"wrote <workspace>/out in <duration>\n"
    assert workspace_tree(tmp_path, normalise=norm) == (
        f"file 0644 log.txt ({len(expected)} bytes, normalised sha256 {sha(expected)})\n"
        "  | wrote <workspace>/out in <duration>\n"
    )


def test_same_content_elsewhere_gives_the_same_tree(tmp_path: Path) -> None:
    for name in ("a", "b"):
        root = tmp_path / name
        (root / "d").mkdir(parents=True)
        (root / "d").chmod(0o755)
        (root / "d" / "f").write_text(f"at {root}\n")
        (root / "d" / "f").chmod(0o644)
    trees = [
        workspace_tree(tmp_path / n, normalise=Normaliser.for_run(workspace=tmp_path / n))
        for n in ("a", "b")
    ]
    assert trees[0] == trees[1]


def test_a_symlinked_directory_is_listed_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    root = tmp_path / "root"
    root.mkdir()
    (root / "escape").symlink_to(outside)
    assert workspace_tree(root) == f"link      escape -> {outside}\n"


def test_fifo_is_named_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    assert workspace_tree(tmp_path) == "special   pipe (fifo)\n"


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError, match="not a directory"):
        workspace_tree(tmp_path / "missing")


def test_the_engines_home_is_left_out_by_default(tmp_path: Path) -> None:
    from pytest_cleanroom.environment import HOME_DIR
    from pytest_cleanroom.snapshot.tree import DEFAULT_EXCLUDE

    assert HOME_DIR in DEFAULT_EXCLUDE
    (tmp_path / HOME_DIR / ".cache").mkdir(parents=True)
    (tmp_path / HOME_DIR / ".cache" / "x").write_text("cache")
    assert workspace_tree(tmp_path) == ""
    assert ".cache/x" in workspace_tree(tmp_path, exclude=())
