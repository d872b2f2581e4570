"""Fixtures of the escape suite: every backend under test, for this project's own checks and for
the shipped conformance checks (:mod:`pytest_cleanroom.testing.conformance`)."""

from __future__ import annotations

import pytest

from tests.security.backends import CONFORMANCE_BACKENDS, SECURITY_BACKENDS, require_backend


@pytest.fixture(params=SECURITY_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend of this project in turn."""
    name: str = request.param
    require_backend(name)
    return name


@pytest.fixture(params=CONFORMANCE_BACKENDS)
def conformance_backend(request: pytest.FixtureRequest) -> str:
    """The shipped suite's backend under test (``--cleanroom-backend`` for a user's run)."""
    name: str = request.param
    require_backend(name)
    return name
