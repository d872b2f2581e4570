"""The gpack-bundles sub-plugin, declared by ggen_market through the entry-point group
``pytest_cleanroom.subplugins``, is registered and blocked by its documented names."""

from __future__ import annotations

import pytest

CONFTEST = """
import sys

def pytest_configure(config):
    print("GPACK PLUGIN IMPORTED:", "ggen_market.gpack_bundles.plugin" in sys.modules)
    print("REGISTERED:", config.pluginmanager.has_plugin("cleanroom.gpack_bundles.plugin"))
"""


@pytest.mark.parametrize("block", ["cleanroom.gpack_bundles.plugin", "cleanroom"])
def test_blocking_the_gpack_subplugin(pytester: pytest.Pytester, block: str) -> None:
    pytester.makeconftest(CONFTEST)
    # In a subprocess: this process has imported every part already.
    blocked = pytester.runpytest_subprocess("-p", f"no:{block}", "-s", "--help")
    out = blocked.stdout.str()
    assert "GPACK PLUGIN IMPORTED: False" in out
    assert "REGISTERED: False" in out
    assert "--cleanroom-gpacks" not in out


def test_the_declared_subplugin_is_registered(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    allowed = pytester.runpytest_subprocess("-s", "--help")
    out = allowed.stdout.str()
    assert "GPACK PLUGIN IMPORTED: True" in out
    assert "REGISTERED: True" in out
    assert "--cleanroom-gpacks" in out
