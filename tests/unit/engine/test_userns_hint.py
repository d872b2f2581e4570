"""The error of a sandbox that cannot create user namespaces names what forbids them here.

Ubuntu 23.10+'s AppArmor restriction (``kernel.apparmor_restrict_unprivileged_userns``) cannot be
switched on on this Debian kernel, which has no such knob: the tests point the check at a file
of their own in its place (the only part that is not the real thing).
"""

from __future__ import annotations

from pathlib import Path

from pytest_cleanroom.backends.availability import APPARMOR_USERNS_KNOB, userns_hint


def test_apparmor_restriction_is_named_with_both_fixes(tmp_path: Path) -> None:
    knob = tmp_path / "apparmor_restrict_unprivileged_userns"
    knob.write_text("1\n")
    hint = userns_hint("/usr/bin/bwrap", str(knob))
    assert "kernel.apparmor_restrict_unprivileged_userns=1" in hint
    assert "AppArmor profile that allows 'userns' for /usr/bin/bwrap" in hint
    assert "bwrap-userns-restrict" in hint  # the profile Ubuntu ships for it
    assert "sysctl kernel.apparmor_restrict_unprivileged_userns=0" in hint
    assert "docs/platforms.md" in hint


def test_without_the_restriction_the_sysctls_are_named(tmp_path: Path) -> None:
    knob = tmp_path / "apparmor_restrict_unprivileged_userns"
    knob.write_text("0\n")
    for path in (str(knob), str(tmp_path / "absent")):
        hint = userns_hint("/usr/bin/unshare", path)
        assert "AppArmor" not in hint
        assert "user.max_user_namespaces>0" in hint
    # This machine: no such knob, so the real check gives the generic hint.
    if not Path(APPARMOR_USERNS_KNOB).exists():
        assert "AppArmor" not in userns_hint("/usr/bin/bwrap")
