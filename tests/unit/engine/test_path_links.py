"""A sandbox's set-up failure that names a path of the policy says which field names it.

The host can change a path between a command's filesystem plan and its mounts (no plan closes
that race); the set-up step then fails with its own words. A race between two processes cannot
be produced on demand, so these are the words the set-up steps printed in such races on this
project's machine (bubblewrap's, and the compiled set-up step's seen from its new root).
"""

from __future__ import annotations

import pytest

from pytest_cleanroom import Policy
from pytest_cleanroom.backends.namespace.path_links import explained
from pytest_cleanroom.errors import SandboxError

POLICY = Policy.level("standard").replace(
    hidden_paths=("/var/tmp/x/closed", "/run"),
    readable_paths=("/var/tmp/x/closed/pub",),
    writable_paths=("/srv/out",),
)


@pytest.mark.parametrize(
    ("words", "field", "path"),
    [
        (
            "bubblewrap could not set up the sandbox: bwrap: Can't mount tmpfs on "
            "/newroot/var/tmp/x/closed: No such file or directory",
            "hidden_paths",
            "/var/tmp/x/closed",
        ),
        (
            "bubblewrap could not set up the sandbox: bwrap: Can't mkdir /var/tmp/x/closed: "
            "Read-only file system",
            "hidden_paths",
            "/var/tmp/x/closed",
        ),
        (
            "the unshare backend could not set up the sandbox: cleanroom-nsinit: create "
            "/newroot/var/tmp/x/closed/pub: Read-only file system",
            "readable_paths",
            "/var/tmp/x/closed/pub",
        ),
        (
            "the bwrap backend could not enter its warm sandbox: cleanroom-nsinit: mount "
            "/srv/out on /srv/out: No such file or directory",
            "writable_paths",
            "/srv/out",
        ),
    ],
)
def test_the_field_naming_the_path_and_the_fix_are_added(words: str, field: str, path: str) -> None:
    message = str(explained(POLICY, SandboxError(words)))
    assert message.startswith(words)
    assert f"({field} entry {path!r}: the host changed it" in message
    assert "run the command again" in message
    assert message.endswith("'Links in hidden, readable and writable paths')")


def test_a_path_inside_a_policy_path_is_not_taken_for_it() -> None:
    """``/run/cleanroom/x`` is not the hidden ``/run``: the error is left as it is."""
    error = SandboxError("bwrap: Can't mkdir /run/cleanroom/x: Read-only file system")
    assert explained(POLICY, error) is error
