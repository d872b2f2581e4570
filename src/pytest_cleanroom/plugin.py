"""The pytest11 entry point ``cleanroom``.

Each feature is a sub-plugin in its own module, registered here so that its options, fixtures and
hooks live beside its logic. Sub-plugin modules must import only cheap things at module level.

``-p no:cleanroom`` disables all of them; ``-p no:cleanroom.services.plugin`` (the module's name
with ``pytest_cleanroom.`` shortened to ``cleanroom.``) disables one, without even importing it.
Sub-plugins that live in packages above this one (``ggen_market``'s test-gpack bundles) are not
named here: this distribution declares them in the entry-point group :data:`SUBPLUGIN_GROUP`
(``NAME = "module"``, NAME being the one to block them with), so the imports point one way.
"""

from __future__ import annotations

import importlib
import importlib.metadata

import pytest

SUBPLUGINS: tuple[str, ...] = (
    "pytest_cleanroom.pytest_plugin.core",
    "pytest_cleanroom.services.plugin",
    "pytest_cleanroom.scenarios.plugin",
    "pytest_cleanroom.attest.plugin",
    "pytest_cleanroom.shard.plugin",
)

#: Sub-plugins declared by the other packages of this distribution.
SUBPLUGIN_GROUP = "pytest_cleanroom.subplugins"
DISTRIBUTION = "pytest-cleanroom"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)
    # Registering from addhooks makes every sub-plugin's pytest_addoption run as usual.
    for regname, name in all_subplugins():
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


def all_subplugins() -> list[tuple[str, str]]:
    """``(registered name, module)`` of every sub-plugin: this package's, then the declared ones."""
    return [(subplugin_name(name), name) for name in SUBPLUGINS] + declared_subplugins()


def declared_subplugins() -> list[tuple[str, str]]:
    """``(registered name, module)`` of the sub-plugins in this distribution's
    :data:`SUBPLUGIN_GROUP` (pytest has just read the same metadata: this is cheap)."""
    try:
        entry_points = importlib.metadata.distribution(DISTRIBUTION).entry_points
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return []
    return [(ep.name, ep.value) for ep in entry_points if ep.group == SUBPLUGIN_GROUP]
