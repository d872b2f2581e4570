"""docs/market.md's import example runs as written, printing what the page shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import run_doc_script

from .conftest import REPO

pytestmark = pytest.mark.integration

SECTION = "Importing ggen packages"


def blocks(language: str) -> list[str]:
    text = (REPO / "docs" / "market.md").read_text()
    start = text.index(f"\n## {SECTION}\n")
    end = text.find("\n## ", start + 1)
    fenced = re.findall(r"^```(\w*)\n(.*?)^```$", text[start:end], re.DOTALL | re.MULTILINE)
    return [body for lang, body in fenced if lang == language]


def test_import_example_runs_and_prints_what_the_page_shows(tmp_path: Path) -> None:
    result = run_doc_script(blocks("sh")[0], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    shown = blocks("")[0].splitlines()
    printed = result.stdout.splitlines()
    assert len(printed) == len(shown), result.stdout
    for want, got in zip(shown, printed, strict=True):
        if "…" in want:  # the archive digest is elided on the page
            assert got.startswith(want.split("…")[0])
        else:
            assert got == want
