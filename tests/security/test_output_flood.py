"""The shipped conformance checks of :mod:`pytest_cleanroom.testing.conformance.test_output`,
run against every backend of this project (see conftest.py)."""

import pytest

from pytest_cleanroom.testing.conformance.test_output import *  # noqa: F403

pytestmark = pytest.mark.integration
