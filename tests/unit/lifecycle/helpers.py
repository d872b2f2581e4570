"""Helpers shared by the lifecycle tests: write a project tree from a dict."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

from ggen_lifecycle.config import Project, load_project

#: Workspaces to declare: names, or ``{name: [workspaces it depends on]}``.
Workspaces = Sequence[str] | Mapping[str, Sequence[str]]


def workspace_tables(workspaces: Workspaces) -> str:
    """``[workspace.NAME]`` tables with ``path = "NAME"`` (and ``depends_on``)."""
    needs = workspaces if isinstance(workspaces, Mapping) else {name: () for name in workspaces}
    tables = []
    for name, deps in needs.items():
        table = f'[workspace.{name}]\npath = "{name}"\n'
        tables.append(table + (f"depends_on = {json.dumps(list(deps))}\n" if deps else ""))
    return "".join(tables)


def write_project(
    root: Path,
    make_toml: str,
    files: dict[str, str] | None = None,
    *,
    workspaces: Workspaces = (),
) -> Path:
    """Write ``make.toml`` (dedented) and ``files`` (relative path -> text) under ``root``.

    ``workspaces`` are declared at the top of make.toml, each in a directory of its own name.
    """
    root.mkdir(parents=True, exist_ok=True)
    text = workspace_tables(workspaces) + textwrap.dedent(make_toml).lstrip()
    (root / "make.toml").write_text(text, encoding="utf-8")
    for name in workspaces:
        (root / name).mkdir(exist_ok=True)
    for rel, content in (files or {}).items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(content), encoding="utf-8")
    return root


def project_from(
    root: Path, make_toml: str, files: dict[str, str] | None = None, *, workspaces: Workspaces = ()
) -> Project:
    return load_project(write_project(root, make_toml, files, workspaces=workspaces))


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False
