"""Reading the runnable examples out of a docs page.

- a ```python block without ``file=`` is library code, executed as is;
- a ```toml block without ``file=`` must be a valid scenario file;
- ``<!-- example: NAME expect: passed=2 failed=1 args: -k x -->`` starts an example project made
  of the following ```LANG file=NAME blocks; pytest runs it with ``args`` and the outcomes must
  be ``expect``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

DOCS = Path(__file__).resolve().parents[3] / "docs"

_BLOCK = re.compile(r"```(\w+)([^\n]*)\n(.*?)```", re.DOTALL)
_EXAMPLE = re.compile(r"<!-- example: (\S+)(.*?)-->", re.DOTALL)


@dataclass
class Project:
    name: str
    line: int
    expect: dict[str, int]
    args: list[str]
    files: dict[str, str] = field(default_factory=dict)


@dataclass
class Page:
    code: list[tuple[int, str]] = field(default_factory=list)
    scenario_files: list[tuple[int, str]] = field(default_factory=list)
    projects: list[Project] = field(default_factory=list)


def read_page(name: str) -> Page:
    text = (DOCS / name).read_text()
    page = Page()
    markers = [(m.start(), m) for m in _EXAMPLE.finditer(text)]
    for block in _BLOCK.finditer(text):
        lang, info, body = block.group(1), block.group(2), block.group(3)
        line = text.count("\n", 0, block.start()) + 1
        target = re.search(r"file=(\S+)", info)
        if target is None:
            if lang == "python":
                page.code.append((line, body))
            elif lang == "toml":
                page.scenario_files.append((line, body))
            continue
        owner = [m for start, m in markers if start < block.start()]
        assert owner, f"{name}:{line}: a file= block outside an example"
        project = _project(page, owner[-1], text)
        project.files[target.group(1)] = body
    return page


def _project(page: Page, marker: re.Match[str], text: str) -> Project:
    for project in page.projects:
        if project.name == marker.group(1):
            return project
    rest = marker.group(2)
    expect_text = re.search(r"expect:\s*((?:\w+=\d+\s*)+)", rest)
    args_text = re.search(r"args:\s*(.*)$", rest.strip())
    expect = {}
    if expect_text:
        for pair in expect_text.group(1).split():
            key, value = pair.split("=")
            expect[key] = int(value)
    project = Project(
        name=marker.group(1),
        line=text.count("\n", 0, marker.start()) + 1,
        expect=expect,
        args=shlex.split(args_text.group(1)) if args_text else [],
    )
    page.projects.append(project)
    return project
