"""The console example of docs/lifecycle.md's section on ggen's make.toml runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import run_doc_script

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[3] / "docs" / "lifecycle.md"


def test_the_ggen_make_toml_example_runs(tmp_path: Path) -> None:
    text = DOC.read_text()
    section = text[text.index("## make.toml files written for ggen") :]
    block = re.search(r"```console\n(.*?)```", section, re.DOTALL)
    assert block is not None
    lines = block.group(1).splitlines()
    last = max(i for i, line in enumerate(lines) if line.startswith("$ "))
    script = "\n".join(line.removeprefix("$ ") for line in lines[: last + 1])
    expected = "\n".join(lines[last + 1 :])
    done = run_doc_script(script, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.endswith(expected + "\n")
    assert "declared outputs were not produced: dist/never-made.txt" in done.stdout + done.stderr
    assert "unknown key 'author' in [project] ignored" in done.stdout + done.stderr
