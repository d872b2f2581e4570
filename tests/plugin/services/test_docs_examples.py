"""Every example of docs/services.md runs as written."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import docker  # noqa: F401  (loaded before pytester snapshots sys.modules)
import pytest

from pytest_cleanroom.services.binaries import find_mysql, find_postgres
from pytest_cleanroom.services.engines import PODMAN
from tests.conftest import require, require_binary
from tests.integration.services.conftest import require_engine
from tests.plugin.services.test_django import use_pytest_django

pytest_plugins = ("pytester",)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("binaries", "runtime_dir")]

DOC = Path(__file__).resolve().parents[3] / "docs" / "services.md"
MARKER = re.compile(r"<!-- example: (\S+) -->")
BLOCK = re.compile(r"```(?:python|ini|sql|toml)\n(.*?)```", re.DOTALL)
FILENAME = re.compile(r"^(?:#|--) (\S+)\n")


def examples() -> dict[str, dict[str, str]]:
    """``{example: {file name: content}}``: the fenced blocks after each marker, up to the next
    marker or section; each block names its file on its first line."""
    text = DOC.read_text()
    found: dict[str, dict[str, str]] = {}
    parts = MARKER.split(text)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        body = body.split("\n## ", 1)[0]
        files = {}
        for block in BLOCK.findall(body):
            match = FILENAME.match(block)
            assert match, f"example {name}: a block does not name its file: {block[:60]!r}"
            files[match.group(1)] = block[match.end() :]
        found[name] = files
    return found


def test_the_doc_has_examples() -> None:
    names = {"quickstart", "template", "settings", "server-state", "drivers", "sandbox"}
    others = {"django", "mysql", "factories", "majors", "alembic", "podman", "kind"}
    assert set(examples()) == names | others


#: Examples that need a container engine carry its marker (deselected where none runs).
ENGINE_MARKS = {"podman": pytest.mark.podman}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=ENGINE_MARKS.get(n, ())) for n in sorted(examples())]
)
def test_example_runs_as_written(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    if name == "alembic":
        require(importlib.util.find_spec("alembic") is not None, "alembic (scripts/setup.sh)")
    if name == "drivers":
        for module in ("asyncpg", "sqlalchemy", "anyio"):
            require(importlib.util.find_spec(module) is not None, f"{module} (scripts/setup.sh)")
    if name == "mysql":
        require(find_mysql() is not None, "MariaDB's server (apt-get install mariadb-server)")
    if name == "podman":
        require_engine(PODMAN)
    if name == "majors":
        require(find_postgres(None, 16) is not None, "PostgreSQL 16 (scripts/setup.sh: pgserver)")
    if name in ("sandbox", "kind"):
        require_binary("bwrap", "apt-get install bubblewrap")
        require(shutil.which("psql") is not None, "psql (apt-get install postgresql-client)")
    for filename, content in examples()[name].items():
        path = pytester.path / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    if name == "django":  # pytest-django lives apart from the environment: a pytest of its own
        use_pytest_django(monkeypatch)
    if name in ("django", "kind"):  # a kind registered by conftest.py stays in its process
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    else:
        result = pytester.runpytest("-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1, result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
