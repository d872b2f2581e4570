"""The Python examples of docs/templates.md's section on ggen templates run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[3] / "docs" / "templates.md"
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _examples() -> list[pytest.param]:  # type: ignore[valid-type]
    text = DOC.read_text()
    section = text[text.index("## Templates written for ggen") :]
    offset = len(text) - len(section)
    return [
        pytest.param(
            m.group(1), id=f"templates.md:{text.count(chr(10), 0, offset + m.start()) + 1}"
        )
        for m in _BLOCK.finditer(section)
    ]


@pytest.mark.parametrize("code", _examples())
def test_example_runs(code: str) -> None:
    exec(compile(code, "<docs example>", "exec"), {"__name__": "__docs__"})
