"""The console example of docs/lifecycle.md's section on cleanroom phases' services runs as
written: each command's output is what the page shows under it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import require_binary

from .test_production_docs import run_as_written

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
    run_as_written(block.group(1), tmp_path)
