"""The console example of docs/lifecycle.md's section on cleanroom phases' services runs as
written: each command's output is what the page shows under it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import require_binary, run_doc_script

from .test_production_docs import MARK, commands_and_outputs

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[3] / "docs" / "lifecycle.md"


def test_the_services_example_runs_as_written(tmp_path: Path) -> None:
    for binary, package in [
        ("bwrap", "bubblewrap"),
        ("psql", "postgresql-client"),
        ("redis-server", "redis-server"),
        ("redis-cli", "redis-tools"),
        ("mariadbd", "mariadb-server"),
        ("mariadb", "mariadb-client"),
    ]:
        require_binary(binary, f"apt-get install {package}")
    text = DOC.read_text()
    section = text[text.index("#### Services") :]
    block = re.search(r"```console\n(.*?)```", section, re.DOTALL)
    assert block is not None
    steps = commands_and_outputs(block.group(1))
    script = "\n".join(f"{command}\necho '{MARK}'" for command, _ in steps)
    done = run_doc_script(script, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    outputs = done.stdout.split(MARK + "\n")
    for (command, expected), got in zip(steps, outputs, strict=False):
        assert got.rstrip("\n") == expected, f"{command}\n{done.stderr[-2000:]}"
