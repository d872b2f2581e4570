"""globwalk: ``**`` globs that end on trees with symlink loops; the matcher of declared paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_cleanroom.globwalk import _regex_matches, iglob, matches, segments


def tree(root: Path) -> Path:
    for rel in ("src/a/f.c", "src/a/b/g.c", "src/h.txt", "src/.hidden.c", "README"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    return root


def test_double_star_does_not_follow_links_to_ancestors(tmp_path: Path) -> None:
    root = tree(tmp_path)
    # Two links back up the tree: glob.glob(recursive=True) walks 2^depth paths through them.
    os.symlink("..", root / "src/a/up1")
    os.symlink("../..", root / "src/a/up2")
    found = sorted(iglob(str(root), "src/**/*.c"))
    assert found == ["src/a/b/g.c", "src/a/f.c"]
    everything = sorted(iglob(str(root), "**"))
    assert "src/a/up1" in everything  # the link itself is a name in its directory...
    assert not [p for p in everything if "/up1/" in p or "/up2/" in p]  # ...never entered


def test_glob_rules_as_the_glob_module(tmp_path: Path) -> None:
    root = tree(tmp_path)
    assert sorted(iglob(str(root), "src/*")) == ["src/a", "src/h.txt"]  # no dotfile
    assert sorted(iglob(str(root), "src/.*.c")) == ["src/.hidden.c"]
    assert sorted(iglob(str(root), "src/**/b")) == ["src/a/b"]
    assert sorted(iglob(str(root), "./README")) == ["README"]
    assert list(iglob(str(root), "missing/**")) == []
    assert list(iglob(str(root / "absent"), "**")) == []


def test_repeated_double_stars_visit_each_directory_once(tmp_path: Path) -> None:
    root = tmp_path
    deep = root.joinpath(*["d"] * 30)
    deep.mkdir(parents=True)
    (deep / "x.c").write_text("")
    # 20 '**' over 30 levels: glob.glob would try C(50, 20) ways; here each (dir, position) once.
    pattern = "/".join(["**"] * 20) + "/x.c"
    assert list(iglob(str(root), pattern)) == ["/".join(["d"] * 30) + "/x.c"]


@pytest.mark.parametrize("pattern", ["/etc/**", "../x", "a/../../b", "a\0b"])
def test_patterns_that_could_leave_the_root_match_nothing(tmp_path: Path, pattern: str) -> None:
    tree(tmp_path)
    assert segments(pattern) is None
    assert list(iglob(str(tmp_path / "src"), pattern)) == []
    assert not matches("etc/passwd", pattern)


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        ("dist/a.txt", "dist/**", True),
        ("dist/x/a.txt", "dist/*.txt", False),
        ("dist/a.txt", "dist/*.txt", True),
        ("dist/a/b/c", "dist", True),  # a matched directory stands for what is below it
        ("src/a/b/c.c", "src/**/*.c", True),
        ("src/c.c", "src/**/*.c", True),
        ("c.c", "[!ab].c", True),
        ("a.c", "[!ab].c", False),
        ("a/b", "a?b", False),
        ("distx/a", "dist", False),
    ],
)
def test_matches(path: str, pattern: str, expected: bool) -> None:
    assert matches(path, pattern) is expected


@pytest.mark.parametrize(
    "pattern",
    [
        "out/**",
        "./out//**",
        "a/b/**",
        "**",
        "out/*/**",
        "o?t/**",
        "[o]ut/**",
        "out/**/x",
        "!out/**",
    ],
)
@pytest.mark.parametrize(
    "path", ["out", "out/x", "out/.hidden", "out/a/b", "outer/x", "a/b/c", "a/bc/d", "x", "out/"]
)
def test_the_plain_directory_shortcut_matches_as_the_regex_does(path: str, pattern: str) -> None:
    # the lifecycle's cache-hit path checks outputs with the shortcut alone (no re loaded)
    assert matches(path, pattern) == _regex_matches(path, pattern)
