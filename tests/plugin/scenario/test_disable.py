"""``-p no:cleanroom.scenario.plugin`` still blocks the scenario sub-plugin (now ``scenarios``)."""

from __future__ import annotations

import pytest


def test_blocking_the_scenario_subplugin_by_its_documented_name(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import sys

        def pytest_configure(config):
            print("SCENARIO PLUGIN IMPORTED:", "pytest_cleanroom.scenarios.plugin" in sys.modules)
            print("REGISTERED:", config.pluginmanager.has_plugin("cleanroom.scenario.plugin"))
        """
    )
    pytester.makefile(
        ".scenario.toml", x='[scenario]\nname = "x"\n[[steps]]\nname = "a"\nrun = "true"\n'
    )
    # In a subprocess: this process has imported every part already.
    blocked = pytester.runpytest_subprocess("-p", "no:cleanroom.scenario.plugin", "-s")
    out = blocked.stdout.str()
    assert "SCENARIO PLUGIN IMPORTED: False" in out
    assert "REGISTERED: False" in out
    assert blocked.ret == pytest.ExitCode.NO_TESTS_COLLECTED  # the scenario file is not collected

    allowed = pytester.runpytest_subprocess("-s")
    out = allowed.stdout.str()
    assert "SCENARIO PLUGIN IMPORTED: True" in out
    assert "REGISTERED: True" in out
    allowed.assert_outcomes(passed=1)
