"""The pytest11 entry point ``cleanroom``.

Each feature is a sub-plugin in its own module, registered here so that its options, fixtures and
hooks live beside its logic. Sub-plugin modules must import only cheap things at module level.

``-p no:cleanroom`` disables all of them; ``-p no:cleanroom.services.plugin`` (the module's name
with ``pytest_cleanroom.`` shortened to ``cleanroom.``) disables one, without even importing it.
"""

from __future__ import annotations

import importlib

import pytest

SUBPLUGINS: tuple[str, ...] = (
    "pytest_cleanroom.pytest_plugin.core",
    "pytest_cleanroom.services.plugin",
    "pytest_cleanroom.scenarios.plugin",
    "pytest_cleanroom.attest.plugin",
    "pytest_cleanroom.gpack_bundles.plugin",
    "pytest_cleanroom.shard.plugin",
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)
    # Registering from addhooks makes every sub-plugin's pytest_addoption run as usual.
    for name in SUBPLUGINS:
        regname = subplugin_name(name)
        if pluginmanager.is_blocked(regname):
            continue
        module = importlib.import_module(name)
        if not pluginmanager.is_registered(module):
            pluginmanager.register(module, name=regname)


#: Sub-plugins whose registered name is not derived from their module's: the scenario package
#: was renamed (``scenarios``), but ``-p no:cleanroom.scenario.plugin`` stays the way to block it.
_NAMES = {"pytest_cleanroom.scenarios.plugin": "cleanroom.scenario.plugin"}


def subplugin_name(module: str) -> str:
    """The name a sub-plugin is registered (and can be blocked with ``-p no:NAME``) under."""
    return _NAMES.get(module, module.replace("pytest_cleanroom.", "cleanroom.", 1))
