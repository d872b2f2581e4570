"""``ggen template generate`` writes every file or none: a parent path that is a file or a full
disk while writing the second file leaves the output directory as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from ggen_market.errors import TemplateError
from ggen_market.template.generate import GpackTemplate, generate, gpack_templates
from tests.conftest import small_tmpfs


def _gpack(root: Path, templates: dict[str, str]) -> list[GpackTemplate]:
    root.mkdir(parents=True)
    (root / "gpack.toml").write_text('[gpack]\nid = "io.test.aon"\nname = "t"\nversion = "1.0.0"\n')
    for name, text in templates.items():
        path = root / "templates" / f"{name}.tmpl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return gpack_templates(root)


def _tree(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): "dir" if p.is_dir() else p.read_text()
        for p in sorted(directory.rglob("*"))
    }


def test_a_parent_path_that_is_a_file_writes_nothing(tmp_path: Path) -> None:
    templates = _gpack(
        tmp_path / "g",
        {
            "a": "---\nto: a.txt\n---\nfirst\n",
            "b": "---\nto: new/deeper/b.txt\n---\nsecond\n",
            "c": "---\nto: blocker/c.txt\n---\nthird\n",
        },
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / "blocker").write_text("a file where a directory is needed")
    before = _tree(out)
    with pytest.raises(TemplateError, match=r"blocker.*not a directory"):
        generate(templates, out, {})
    assert _tree(out) == before


def test_a_full_disk_while_writing_writes_nothing(tmp_path: Path) -> None:
    """On a real 64 KiB tmpfs: the first file fits, the second does not."""
    templates = _gpack(
        tmp_path / "g",
        {
            "a": "---\nto: a.txt\n---\nsmall\n",
            "b": "---\nto: sub/b.txt\n---\n{{ 'x' * 300000 }}\n",
        },
    )
    with small_tmpfs(tmp_path / "disk", "64k") as out:
        (out / "kept.txt").write_text("was here")
        with pytest.raises(TemplateError, match="No space left on device; nothing was written"):
            generate(templates, out, {})
        assert _tree(out) == {"kept.txt": "was here"}
