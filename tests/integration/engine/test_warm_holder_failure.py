"""A warm sandbox that could not be made costs its own plan a while of cold starts, not the
process every warm sandbox: a holder too slow to build its sandbox on a busy machine (or one
policy's holder failing) leaves the other policies' commands warm, and the plan is tried again
later."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cleanroom import Policy
from pytest_cleanroom.backends import _warm, get_backend
from pytest_cleanroom.backends.local import NamespaceBackend
from tests.security.backends import LOCAL_BACKENDS, probe_spec, require_entering_ahead

from .conftest import require_backend

pytestmark = pytest.mark.integration


def _holders(backend: NamespaceBackend) -> set[int]:
    return set(backend.warm_holders)


@pytest.mark.parametrize("name", LOCAL_BACKENDS)
def test_a_warm_holder_that_failed_costs_only_its_plan_and_is_tried_again(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_backend(name)
    require_entering_ahead()
    # Plans of their own (each hides a top-level directory no other test hides), so that no
    # other test's holder serves them.
    standard = Policy.level("standard")
    slow = standard.replace(hidden_paths=[*standard.hidden_paths, "/opt"])
    other = standard.replace(hidden_paths=[*standard.hidden_paths, "/var"])
    backend = get_backend(name, slow)
    assert isinstance(backend, NamespaceBackend)
    # Holders of this test's own: the process's shared ones are other tests' too.
    warm = _warm.WarmSandboxes(backend.holder_launch)
    monkeypatch.setattr(backend, "_warm_sandboxes", lambda: warm)
    (tmp_path / "ws").mkdir()
    try:
        before = _holders(backend)
        # A holder given no time at all to build its sandbox: it is not ready in time.
        with monkeypatch.context() as patch:
            patch.setattr(_warm, "READY_TIMEOUT", 0.0)
            backend.run(probe_spec(("true",), tmp_path / "ws", slow)).assert_success()
        assert warm.failure is not None
        assert _holders(backend) - before == set()  # it started cold

        # Another policy's commands are warm still.
        backend.run(probe_spec(("true",), tmp_path / "ws", other)).assert_success()
        made_for_other = _holders(backend) - before
        assert len(made_for_other) == 1, warm.failure
        assert not warm.gave_up

        # The plan that failed starts cold for a while, then gets a holder again.
        backend.run(probe_spec(("true",), tmp_path / "ws", slow)).assert_success()
        assert _holders(backend) - before == made_for_other
        monkeypatch.setattr(_warm, "RETRY_AFTER", 0.0)
        backend.run(probe_spec(("true",), tmp_path / "ws", slow)).assert_success()
        assert len(_holders(backend) - before - made_for_other) == 1
    finally:
        backend.close()
        warm.close()
