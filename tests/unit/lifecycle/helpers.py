"""Helpers shared by the lifecycle tests: write a project tree from a dict."""

from __future__ import annotations

import textwrap
from pathlib import Path

from ggen_lifecycle.config import Project, load_project


def write_project(root: Path, make_toml: str, files: dict[str, str] | None = None) -> Path:
    """Write ``make.toml`` (dedented) and ``files`` (relative path -> text) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "make.toml").write_text(textwrap.dedent(make_toml).lstrip(), encoding="utf-8")
    for rel, text in (files or {}).items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def project_from(root: Path, make_toml: str, files: dict[str, str] | None = None) -> Project:
    return load_project(write_project(root, make_toml, files))
