"""The toolkit is the bottom layer: it imports nothing of the project but itself, and the
jobs it does have no second copy elsewhere in src/."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src"
TOOLKIT = SRC / "pytest_cleanroom" / "config_errors"
PROJECT = ("pytest_cleanroom", "ggen_market", "ggen_lifecycle", "ggen_cli", "gpack_bundles")


def _imports(path: Path) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
    return found


def test_the_toolkit_imports_nothing_of_the_project_but_itself() -> None:
    for path in sorted(TOOLKIT.glob("*.py")):
        for module, level in _imports(path):
            if level:
                assert level == 1, f"{path.name}: from {'.' * level}{module} leaves the toolkit"
            else:
                assert module.partition(".")[0] not in PROJECT, f"{path.name} imports {module}"


def test_importing_the_toolkit_loads_neither_pydantic_nor_a_toml_parser() -> None:
    code = (
        "import sys, pytest_cleanroom.config_errors as t, pytest_cleanroom.config_errors.positions;"
        "print(sorted(m for m in ('pydantic', 'tomllib', 'tomli', 'difflib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_other_module_parses_toml_or_suggests_names_by_itself() -> None:
    # The jobs of the toolkit, written again elsewhere, are what #12 removed: a TOML shim and
    # difflib's close matches (the 'did you mean' of every error message).
    for path in sorted(SRC.rglob("*.py")):
        if TOOLKIT in path.parents:
            continue
        for module, _ in _imports(path):
            assert module not in ("tomllib", "tomli", "difflib"), f"{path} imports {module}"
