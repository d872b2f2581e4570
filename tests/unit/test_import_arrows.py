"""Every import in src/ points the way docs/architecture.md draws the arrows (read, not run).

Each module is parsed with :mod:`ast`; every ``import``, ``from ... import`` (at module level, in
functions, under ``TYPE_CHECKING``) and ``importlib.import_module("constant")`` is an arrow.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

#: The packages' layers: an arrow points to a lower layer or stays inside its package.
LAYERS = {"ggen_cli": 2, "ggen_lifecycle": 1, "ggen_market": 1, "pytest_cleanroom": 0}
_PACKAGE_ARROWS = "ggen_cli -> ggen_lifecycle / ggen_market -> pytest_cleanroom"
#: The configuration-error toolkit: the bottom layer, which imports nothing else of the project.
TOOLKIT = ("pytest_cleanroom.config_errors",)
#: Rooms entered only from the listed packages: (room, who may enter, whether the room's own
#: ``__init__`` is a door open to every module).
ROOMS = (
    ("pytest_cleanroom.backends.namespace", ("pytest_cleanroom.backends",), True),
    ("pytest_cleanroom.backends.idmap", ("pytest_cleanroom.backends",), False),
    (
        "pytest_cleanroom.containers",
        (
            "pytest_cleanroom.backends",
            "pytest_cleanroom.services",
            "pytest_cleanroom.docker_support",
        ),
        False,
    ),
)
_PLUGIN_PARTS = tuple(
    f"pytest_cleanroom.{name}"
    for name in (
        "plugin",
        "pytest_plugin",
        "services",
        "scenarios",
        "repeat",
        "attest",
        "snapshot",
        "shard",
        "testing",
    )
)
#: One-way arrows inside the engine: (importers, what they must not import).
ONE_WAY = (
    (("pytest_cleanroom.repeat",), ("pytest_cleanroom.scenarios",)),
    (
        ("pytest_cleanroom.backends", "pytest_cleanroom.cgroups", "pytest_cleanroom.containers"),
        _PLUGIN_PARTS,
    ),
)


@dataclass(frozen=True)
class Arrow:
    """One import: ``source`` (a module of src/) imports ``target`` at ``line``."""

    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}"


def modules(src: Path) -> dict[str, Path]:
    """``{dotted name: file}`` of every module under ``src`` (a package is its ``__init__``)."""
    found: dict[str, Path] = {}
    for path in sorted(src.rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _targets(node: ast.AST, package: str, known: dict[str, Path]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*parts, *([node.module] if node.module else [])])
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            yield sub if sub in known else base
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "import_module"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        yield node.args[0].value


def arrows(src: Path) -> list[Arrow]:
    """Every import of a module of ``src`` by a module of ``src``."""
    known = modules(src)
    ours = {name.split(".")[0] for name in known}
    found: list[Arrow] = []
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target in _targets(node, package, known):
                if target.split(".")[0] in ours:
                    found.append(Arrow(name, target, getattr(node, "lineno", 0)))
    return found


def _inside(module: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _private_parent(target: str) -> str | None:
    """The package a ``_private`` module (or one inside a ``_private`` package) belongs to."""
    parts = target.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def why_wrong(arrow: Arrow) -> str | None:
    """What documented arrow ``arrow`` goes against, ``None`` when it points the right way."""
    source, target = arrow.source, arrow.target
    top_s, top_t = source.split(".")[0], target.split(".")[0]
    if top_s != top_t and LAYERS.get(top_t, 0) >= LAYERS.get(top_s, 0):
        return f"{top_s} may not import {top_t} (arrows: {_PACKAGE_ARROWS})"
    if _inside(source, TOOLKIT) and not _inside(target, TOOLKIT):
        return "the configuration-error toolkit is the bottom layer: it imports nothing else"
    parent = _private_parent(target)
    if parent is not None and not _inside(source, parent):
        return f"a private module is imported only inside its package {parent}"
    for room, entrants, door_open in ROOMS:
        entering = _inside(target, room) and not (door_open and target == room)
        if entering and not _inside(source, (room, *entrants)):
            return f"{room} is entered only from {', '.join(entrants)}"
    for importers, forbidden in ONE_WAY:
        if _inside(source, importers) and _inside(target, forbidden):
            return (
                f"{', '.join(importers)} may not import {target} (the arrow points the other way)"
            )
    return None


def wrong_arrows(src: Path) -> list[str]:
    """Every arrow of ``src`` against the layering, with the rule it breaks."""
    return [
        f"{arrow}: {reason}" for arrow in arrows(src) if (reason := why_wrong(arrow)) is not None
    ]


def test_every_import_points_the_documented_way() -> None:
    assert modules(SRC), f"no modules under {SRC}"
    assert wrong_arrows(SRC) == []


def test_the_project_has_arrows_between_its_packages() -> None:
    # A parser that found nothing would pass the test above: the known arrows must be seen.
    pairs = {(a.source.split(".")[0], a.target.split(".")[0]) for a in arrows(SRC)}
    assert {("ggen_cli", "ggen_lifecycle"), ("ggen_market", "pytest_cleanroom")} <= pairs
    assert (
        "pytest_cleanroom.backends.local",
        "pytest_cleanroom.backends.namespace.filesystem",
    ) in {(a.source, a.target) for a in arrows(SRC)}


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


_BASE = {
    "pytest_cleanroom/__init__.py": "",
    "pytest_cleanroom/policy.py": "",
    "pytest_cleanroom/config_errors/__init__.py": "",
    "pytest_cleanroom/backends/__init__.py": "",
    "pytest_cleanroom/backends/local.py": "from .namespace.filesystem import plan\n",
    "pytest_cleanroom/backends/_warm.py": "",
    "pytest_cleanroom/backends/idmap.py": "from ..policy import Policy\n",
    "pytest_cleanroom/backends/bwrap.py": "from . import idmap\n",
    "pytest_cleanroom/backends/namespace/__init__.py": "from .filesystem import plan\n",
    "pytest_cleanroom/backends/namespace/filesystem.py": "from ...policy import Policy\n",
    "pytest_cleanroom/containers/__init__.py": "",
    "pytest_cleanroom/repeat/__init__.py": "",
    "pytest_cleanroom/scenarios/__init__.py": "",
    "ggen_market/__init__.py": "from pytest_cleanroom import policy\n",
    "ggen_cli/__init__.py": "import ggen_market\n",
}


def test_a_tree_that_follows_the_arrows_passes(tmp_path: Path) -> None:
    assert wrong_arrows(_tree(tmp_path, _BASE)) == []


@pytest.mark.parametrize(
    ("module", "text", "rule"),
    [
        (
            "pytest_cleanroom/gpacks.py",
            "def f():\n    import ggen_market\n",
            "may not import ggen_market",
        ),
        (
            "pytest_cleanroom/plugin.py",
            "import importlib\nimportlib.import_module('ggen_market')\n",
            "may not import ggen_market",
        ),
        ("ggen_market/cli.py", "from ggen_cli import main\n", "may not import ggen_cli"),
        ("ggen_market/x.py", "import ggen_lifecycle\n", "may not import ggen_lifecycle"),
        ("pytest_cleanroom/config_errors/toml.py", "from .. import policy\n", "bottom layer"),
        ("pytest_cleanroom/services/x.py", "from ..backends import _warm\n", "private module"),
        (
            "pytest_cleanroom/pytest_plugin/probe.py",
            "from ..backends.namespace.filesystem import plan\n",
            "entered only from pytest_cleanroom.backends",
        ),
        ("ggen_lifecycle/x.py", "from pytest_cleanroom.containers import y\n", "entered only"),
        (
            "pytest_cleanroom/workspace.py",
            "from .backends.idmap import SANDBOX_UID\n",
            "pytest_cleanroom.backends.idmap is entered only from pytest_cleanroom.backends",
        ),
        ("pytest_cleanroom/repeat/checker.py", "from ..scenarios import model\n", "other way"),
        ("pytest_cleanroom/backends/docker.py", "from ..repeat import tree\n", "other way"),
    ],
)
def test_an_arrow_against_the_layering_is_found(
    tmp_path: Path, module: str, text: str, rule: str
) -> None:
    src = _tree(tmp_path, {**_BASE, module: text, "ggen_lifecycle/__init__.py": ""})
    found = wrong_arrows(src)
    assert len(found) == 1, found
    assert rule in found[0]
    assert module.removesuffix(".py").replace("/", ".") in found[0]


def test_the_namespace_door_is_open_to_the_engine(tmp_path: Path) -> None:
    door = "def f():\n    from ..backends.namespace import plan\n"
    src = _tree(tmp_path, {**_BASE, "pytest_cleanroom/pytest_plugin/probe.py": door})
    assert wrong_arrows(src) == []
