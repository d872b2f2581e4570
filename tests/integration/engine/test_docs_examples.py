"""Every Python example in docs/engine.md, docs/policies.md and docs/architecture.md runs as
written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.integration.engine.conftest import require_backend

pytestmark = pytest.mark.integration

DOCS = Path(__file__).resolve().parents[3] / "docs"
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _examples() -> list[pytest.param]:  # type: ignore[valid-type]
    params = []
    for name in ("engine.md", "policies.md", "architecture.md"):
        text = (DOCS / name).read_text()
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            params.append(pytest.param(match.group(1), id=f"{name}:{line}"))
    return params


@pytest.mark.parametrize("code", _examples())
def test_example_runs(code: str) -> None:
    require_backend("bwrap")
    if "redis-server" in code:
        require_binary("redis-server", "apt-get install redis-server")
    exec(compile(code, "<docs example>", "exec"), {"__name__": "__docs__"})
