"""The embedded registry from an installed wheel's layout (ggen_market/_embedded/example_gpacks).

pyproject.toml force-includes example_gpacks/ there; this test lays the package out the same way
in a temporary site directory (no source checkout next to it) and runs the real `ggen`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import REPO


def test_embedded_registry_from_the_wheel_layout(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(REPO / "src" / "ggen_market", site / "ggen_market",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copytree(REPO / "example_gpacks", site / "ggen_market" / "_embedded" / "example_gpacks")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GGEN_")}
    env.update(
        PYTHONPATH=str(site),
        GGEN_CACHE_DIR=str(tmp_path / "cache"),
        GGEN_CONFIG=str(tmp_path / "none.toml"),
    )
    where = subprocess.run(
        [sys.executable, "-c", "import ggen_market.config as c; print(c.__file__);"
         "print(c.embedded_gpacks_dir())"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    module, embedded = where.stdout.split()
    assert module.startswith(str(site))
    assert embedded == str(site / "ggen_market" / "_embedded" / "example_gpacks")
    found = subprocess.run(
        [sys.executable, "-m", "ggen_cli", "market", "search", "smoke", "--json"],
        env=env, cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert [r["id"] for r in json.loads(found.stdout)["results"]] == ["io.ggen.cleanroom.smoke"]


def test_pyproject_ships_the_examples_into_the_wheel() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert '"example_gpacks" = "ggen_market/_embedded/example_gpacks"' in text
