"""Fixtures of the escape suite: the shipped conformance checks over every backend under test."""

from __future__ import annotations

import pytest

from tests.security.backends import SECURITY_BACKENDS, require_backend


@pytest.fixture(params=SECURITY_BACKENDS)
def conformance_backend(request: pytest.FixtureRequest) -> str:
    """Each backend of this project in turn (the shipped suite takes ``--cleanroom-backend``)."""
    name: str = request.param
    require_backend(name)
    return name
