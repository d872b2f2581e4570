"""Registering test gpacks' fixture modules as pytest plugins.

Each module is imported under its pack-qualified name (``gpack:id@version/fixtures/x.py``) and
executed from source without writing bytecode, so the installed tree still matches its lock digest
afterwards. A fixture name defined by two packs, or by a pack and another plugin or a conftest.py
at or above the rootdir, is an error naming both: pytest would otherwise let one silently replace
the other.
"""

from __future__ import annotations

import sys
import traceback
import types
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from .bundle import Bundle


def register_fixture_modules(config: pytest.Config, bundles: Iterable[Bundle]) -> None:
    """Import every fixtures module of ``bundles`` and register it; nothing is registered when one
    fails to import or clashes (``pytest.UsageError`` naming the pack, file and other owner)."""
    wanted = [(bundle, path) for bundle in bundles for path in bundle.fixtures]
    if not wanted:
        return
    owners = _fixture_owners(config)
    loaded: list[tuple[str, types.ModuleType]] = []
    try:
        for bundle, path in wanted:
            name = bundle.plugin_name(path)
            module = _load_module(name, path, bundle)
            loaded.append((name, module))
            where = f"gpack {bundle.label} ({path})"
            for fixture in sorted(set(_fixture_names(module))):
                other = owners.get(fixture)
                if other is not None:
                    raise pytest.UsageError(
                        f"cleanroom gpacks: fixture {fixture!r} is defined by both {other} and "
                        f"{where}; pytest would silently use only one of them. Remove one of "
                        "the packs (`ggen market remove ID`), or rename the fixture in your "
                        "own code"
                    )
                owners[fixture] = where
    except BaseException:
        for name, _ in loaded:
            sys.modules.pop(name, None)
        raise
    for name, module in loaded:
        config.pluginmanager.register(module, name)


def _load_module(name: str, path: Path, bundle: Bundle) -> types.ModuleType:
    try:
        source = path.read_bytes()
        code = compile(source, str(path), "exec", dont_inherit=True)
    except OSError as exc:
        raise pytest.UsageError(
            f"cleanroom gpacks: cannot read fixtures module of gpack {bundle.label}: {exc}"
        ) from None
    except SyntaxError as exc:
        raise pytest.UsageError(
            f"cleanroom gpacks: {path}:{exc.lineno}: fixtures module of gpack {bundle.label} "
            f"is not valid Python: {exc.msg}"
        ) from None
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    except Exception as exc:
        sys.modules.pop(name, None)
        lines = [
            f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)
        ]
        where = f"{path}:{lines[-1]}" if lines else str(path)
        raise pytest.UsageError(
            f"cleanroom gpacks: {where}: importing the fixtures module of gpack {bundle.label} "
            f"failed: {type(exc).__name__}: {exc}"
        ) from None
    return module


def _fixture_owners(config: pytest.Config) -> dict[str, str]:
    """Fixture name -> who defines it, for the plugins whose fixtures are visible everywhere.

    A conftest.py below the rootdir only overrides a fixture for its own directory, which is
    pytest's documented way to customise one; it is not counted.
    """
    manager = config.pluginmanager
    rootpath = config.rootpath
    owners: dict[str, str] = {}
    for plugin in manager.get_plugins():
        name = manager.get_name(plugin) or repr(plugin)
        if name.endswith("conftest.py"):
            here = Path(name).parent
            if here != rootpath and here not in rootpath.parents:
                continue
            label = f"the conftest.py {name}"
        else:
            label = f"the plugin {name!r}"
        for fixture in _fixture_names(plugin):
            owners.setdefault(fixture, label)
    return owners


def _fixture_names(holder: object) -> Iterator[str]:
    """The names of the fixtures pytest would find on a plugin module or object."""
    namespaces: list[Mapping[str, Any]]
    if isinstance(holder, types.ModuleType):
        namespaces = [vars(holder)]
    else:
        namespaces = [vars(cls) for cls in type(holder).__mro__]
    for namespace in namespaces:
        for value in list(namespace.values()):
            name = _fixture_name(value)
            if name is not None:
                yield name


try:  # pytest >= 8.4: @pytest.fixture returns a FixtureFunctionDefinition
    from _pytest.fixtures import FixtureFunctionDefinition as _Definition
except ImportError:  # pragma: no cover - older pytest marks the function itself
    _Definition = None  # type: ignore[assignment, misc, unused-ignore]


def _fixture_name(value: object) -> str | None:
    if _Definition is not None and isinstance(value, _Definition):
        return str(value.name)
    if isinstance(value, types.FunctionType):  # pragma: no cover - pytest < 8.4
        marker = value.__dict__.get("_pytestfixturefunction")
        if marker is not None:
            return str(getattr(marker, "name", None) or value.__name__)
    return None
