"""Fixtures of the escape suite: one ``backend`` parameter over every backend under test."""

from __future__ import annotations

import pytest

from tests.security.backends import SECURITY_BACKENDS, require_backend


@pytest.fixture(params=SECURITY_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    require_backend(name)
    return name
