"""The conformance suite's one fixture: the backend under test, ``--cleanroom-backend``'s."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def conformance_backend(pytestconfig: pytest.Config) -> str:
    """The name of the backend the conformance checks attack (``--cleanroom-backend``; a
    project's conftest may override this fixture to parametrize it over several)."""
    from ..pytest_plugin.settings import get_settings

    return get_settings(pytestconfig).backend


def pytest_configure(config: pytest.Config) -> None:
    # The shipped checks carry the project's marker for tests of real processes.
    config.addinivalue_line(
        "markers", "integration: real processes, real servers or a real container engine"
    )
