"""What a check needs of the machine: an explained skip locally, a failure in CI (``CI=true``)."""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, what: str) -> None:
    """Skip locally with ``what`` is missing; in CI (``CI=true``) fail instead of skipping."""
    __tracebackhide__ = True
    if condition:
        return
    if IN_CI:
        pytest.fail(f"prerequisite missing in CI: {what}", pytrace=False)
    pytest.skip(f"prerequisite missing: {what}")


def require_binary(name: str, hint: str) -> str:
    """Path of ``name`` on PATH, or skip/fail naming ``hint`` (how to install it)."""
    path = shutil.which(name)
    require(path is not None, f"{name} not on PATH ({hint})")
    assert path is not None
    return path
