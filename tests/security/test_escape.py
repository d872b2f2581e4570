"""The shipped conformance checks of :mod:`pytest_cleanroom.testing.conformance.test_escape`,
run against every backend of this project (see conftest.py)."""

import pytest

from pytest_cleanroom.testing.conformance.test_escape import *  # noqa: F403

pytestmark = pytest.mark.integration
