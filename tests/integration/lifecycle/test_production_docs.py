"""The console example of docs/lifecycle.md's production validation section runs as written:
each command's output is what the page shows under it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import run_doc_script
from tests.integration.engine.conftest import require_backend

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[3] / "docs" / "lifecycle.md"
MARK = "@@@ next command @@@"


def commands_and_outputs(block: str) -> list[tuple[str, str]]:
    """(command with its here-document, expected output) for each ``$`` line of ``block``."""
    found: list[tuple[list[str], list[str]]] = []
    closing: str | None = None
    for line in block.splitlines():
        if closing is not None:
            found[-1][0].append(line)
            closing = None if line == closing else closing
        elif line.startswith("$ "):
            found.append(([line[2:]], []))
            heredoc = re.search(r"<<'(\w+)'", line)
            closing = heredoc.group(1) if heredoc else None
        else:
            found[-1][1].append(line)
    return [("\n".join(c), "\n".join(o)) for c, o in found]


def run_as_written(block: str, cwd: Path) -> None:
    """Run the commands of console ``block`` in ``cwd``, in order, in one shell; each must print
    what the page shows under it."""
    steps = commands_and_outputs(block)
    script = "\n".join(f"{command}\necho '{MARK}'" for command, _ in steps)
    done = run_doc_script(script, cwd)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    outputs = done.stdout.split(MARK + "\n")
    for (command, expected), got in zip(steps, outputs, strict=False):
        assert got.rstrip("\n") == expected, f"{command}\n{done.stderr[-2000:]}"


def test_the_production_validation_example_runs_as_written(tmp_path: Path) -> None:
    require_backend("bwrap")
    text = DOC.read_text()
    section = text[text.index("## Production validation in a cleanroom") :]
    block = re.search(r"```console\n(.*?)```", section, re.DOTALL)
    assert block is not None
    run_as_written(block.group(1), tmp_path)
    statement = tmp_path / "shop" / ".ggen" / "validation" / "production.intoto.json"
    assert statement.is_file()
