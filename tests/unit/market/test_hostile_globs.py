"""gpack globs end quickly: many ``**`` are refused up front, directory links to ancestors are
not followed (no loop), and matching stays what pathlib-style globs mean."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ggen_market.errors import ManifestError
from ggen_market.manifest import load_manifest, matching_files

MANIFEST = '[gpack]\nid = "io.test.glob"\nname = "g"\nversion = "1.0.0"\n'


def test_many_recursive_parts_are_refused_up_front(tmp_path: Path) -> None:
    pattern = "/".join(["**"] * 2 + ["a", "**", "b", "**", "c", "**"] + ["*.tmpl"])
    (tmp_path / "gpack.toml").write_text(f'{MANIFEST}\n[templates]\npatterns = ["{pattern}"]\n')
    with pytest.raises(ManifestError, match=r"at most 3 '\*\*' parts"):
        load_manifest(tmp_path)


def test_consecutive_recursive_parts_count_once(tmp_path: Path) -> None:
    pattern = "/".join(["**"] * 40 + ["*.tmpl"])
    (tmp_path / "gpack.toml").write_text(f'{MANIFEST}\n[templates]\npatterns = ["{pattern}"]\n')
    deep = tmp_path.joinpath(*[f"d{i}" for i in range(30)])
    deep.mkdir(parents=True)
    (deep / "x.tmpl").write_text("x")
    manifest = load_manifest(tmp_path)
    assert matching_files(tmp_path, manifest.templates.patterns) == [deep / "x.tmpl"]


def test_links_to_ancestors_are_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "g"
    (root / "templates" / "sub").mkdir(parents=True)
    (root / "templates" / "a.tmpl").write_text("a")
    (root / "templates" / "sub" / "b.tmpl").write_text("b")
    os.symlink("..", root / "templates" / "sub" / "up")
    os.symlink("../..", root / "templates" / "sub" / "top")
    os.symlink("a.tmpl", root / "templates" / "alias.tmpl")
    found = matching_files(root, ["templates/**/*.tmpl", "**/*.tmpl"])
    rel = [p.relative_to(root).as_posix() for p in found]
    assert rel == ["templates/a.tmpl", "templates/alias.tmpl", "templates/sub/b.tmpl"]


def test_a_file_link_out_of_the_gpack_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "g"
    (root / "templates").mkdir(parents=True)
    (tmp_path / "secret.tmpl").write_text("s")
    os.symlink(tmp_path / "secret.tmpl", root / "templates" / "s.tmpl")
    with pytest.raises(ManifestError, match="links outside the gpack"):
        matching_files(root, ["templates/**/*.tmpl"])


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*.tmpl", ["top.tmpl"]),
        ("templates/*.tmpl", ["templates/a.tmpl"]),
        ("templates/**/*.tmpl", ["templates/a.tmpl", "templates/x/b.tmpl"]),
        ("**/b.tmpl", ["templates/x/b.tmpl"]),
        ("templates/[ab].tmpl", ["templates/a.tmpl"]),
        ("templates/?.tmpl", ["templates/a.tmpl"]),
        ("templates/**", []),  # as in pathlib: a final ** matches directories, never files
    ],
)
def test_glob_meaning(tmp_path: Path, pattern: str, expected: list[str]) -> None:
    (tmp_path / "templates" / "x").mkdir(parents=True)
    for rel in ("top.tmpl", "templates/a.tmpl", "templates/x/b.tmpl"):
        (tmp_path / rel).write_text(rel)
    found = [p.relative_to(tmp_path).as_posix() for p in matching_files(tmp_path, [pattern])]
    assert found == expected
