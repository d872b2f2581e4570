"""Lazy package attributes, so that importing a package does not import its heavy modules."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time (see pytest_cleanroom/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any


def lazy_getattr(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that loads ``name`` from ``package.<names[name]>`` on first use."""

    def module_getattr(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        from importlib import import_module  # not at import: ggen's cache-hit path loads this

        return getattr(import_module(f"{package}.{module}"), name)

    return module_getattr
