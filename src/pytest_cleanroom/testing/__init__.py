"""The conformance suite: the checks any backend runs to show it keeps the policies' promises.

The escape suite (network, filesystem, processes, privileges, secrets under ``locked``), the
limit, kill and output checks, the CPU quota check (enforced or refused, never ignored), and the
environment hand-over checks ship with the package, in
:mod:`pytest_cleanroom.testing.conformance`. Run them against a registered backend with::

    pytest --pyargs pytest_cleanroom.testing.conformance --cleanroom-backend NAME

Each check runs in fresh cleanrooms of that backend and tries to break a promise; the probes
(:mod:`.probes`) exit with a sentinel that tells "blocked" from "escaped" from "broken". A
missing prerequisite (gcc for the ``LD_PRELOAD`` probe, root for a secret in ``/root``) is a
skip that names it, and a failure under ``CI=true``.
"""

from __future__ import annotations

import pytest

# Before the suite's modules are imported, so that their asserts explain themselves.
pytest.register_assert_rewrite("pytest_cleanroom.testing.conformance")

from .prerequisites import IN_CI, require, require_binary  # noqa: E402

__all__ = ["IN_CI", "require", "require_binary"]
