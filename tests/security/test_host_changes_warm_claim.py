"""A host change made after the next command's sandbox was entered ahead is seen by that command.

While a command runs, the namespace backends enter the warm sandbox of the next one ahead, with
the hidden and readable paths of the filesystem plan as the host was then; the claim of that
sandbox trusts the plan's reading of the host while the directories it was read from are
unchanged. Here the host changes such a path only once the sandbox was entered ahead (the
existing tests of host changes let the next command race the preparer): the command must never
show the secret, show what a command started cold on the changed host shows, and be refused
only where a cold start is refused too (a readable directory that became a link into a hidden
one is refused with the fix, cold and warm alike, rather than run).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_cleanroom import Policy
from pytest_cleanroom.backends.base import CommandSpec
from pytest_cleanroom.backends.bwrap import BwrapBackend
from pytest_cleanroom.backends.local import NamespaceBackend
from pytest_cleanroom.backends.unshare import UnshareBackend
from pytest_cleanroom.errors import PolicyError, SandboxError
from tests.security.backends import (
    probe_spec,
    require_backend,
    require_entering_ahead,
    wait_for_a_sandbox_entered_ahead,
)
from tests.security.test_host_changes_between_commands import SETTLE, write_secret

pytestmark = pytest.mark.integration

BACKENDS = {"bwrap": BwrapBackend, "unshare": UnshareBackend}
# What the command sees: the hidden paths' contents ($1, $3, $4, in $5), what is in and below
# the readable directory ($2).
PROBE = (
    'cat "$1" "$3" "$4" "$5"/* 2>/dev/null; cat "$2"/* 2>/dev/null; ls "$2" 2>/dev/null; echo end'
)


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory the sandbox can read (``/var/tmp``: the test's ``/tmp`` is private), holding
    a hidden directory with the secret, a hidden path that does not exist yet and a readable
    directory."""
    directory = Path(tempfile.mkdtemp(prefix="cleanroom-warm-claim-", dir="/var/tmp"))
    directory.chmod(0o755)
    (directory / "closed").mkdir(mode=0o755)
    write_secret(directory / "closed" / "secret")
    (directory / "open").mkdir(mode=0o755)
    (directory / "empty").mkdir(mode=0o755)
    (directory / "full").mkdir(mode=0o755)
    write_secret(directory / "full" / "secret")
    (directory / "via").symlink_to("empty")
    write_secret(directory / "kept")
    (directory / "open" / "public").write_text("public\n")
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def _relink(link: Path, target: Path) -> Callable[[], None]:
    def change() -> None:
        if link.is_dir() and not link.is_symlink():
            shutil.rmtree(link)
        link.with_name(link.name + "+").symlink_to(target)
        os.replace(link.with_name(link.name + "+"), link)

    return change


def _write(path: Path) -> Callable[[], None]:
    return lambda: write_secret(path)


#: Each change the host makes, given the directory of the fixture below.
CHANGES: dict[str, Callable[[Path], Callable[[], None]]] = {
    # The hidden path that did not exist appears, holding the secret.
    "hidden-appears": lambda base: _write(base / "link"),
    # The hidden file is renamed over by another one (its cover stays on the old file).
    "hidden-replaced": lambda base: _write(base / "kept"),
    # The hidden directory is renamed over by another one holding the secret.
    "hidden-dir-swapped": lambda base: _relink(base / "closed", base / "full"),
    # ... or appears as a link to the secret, or to its (hidden) directory.
    "hidden-becomes-link": lambda base: _relink(base / "link", base / "closed" / "secret"),
    "hidden-becomes-link-to-dir": lambda base: _relink(base / "link", base / "closed"),
    # The readable directory is renamed over by a link to the hidden one holding the secret.
    "readable-becomes-link": lambda base: _relink(base / "open", base / "closed"),
    # A link on the way to the hidden path, to a directory without it, is pointed at one with.
    "link-on-the-way-retargeted": lambda base: _relink(base / "via", base / "full"),
}


def _spec(tmp_path: Path, base: Path, level: str) -> CommandSpec:
    fields = Policy.level(level).model_dump()
    hidden = [str(base / n) for n in ("closed", "link", "via/secret", "kept")]
    fields["hidden_paths"] = [*fields["hidden_paths"], *hidden]
    fields["readable_paths"] = [*fields["readable_paths"], str(base), str(base / "open")]
    names = ("link", "open", "via/secret", "kept", "closed")
    argv = ("/bin/sh", "-c", PROBE, "probe", *(str(base / n) for n in names))
    return probe_spec(argv, tmp_path, Policy.model_validate(fields))


def _outcome(backend: NamespaceBackend, spec: CommandSpec) -> tuple[int, str] | str:
    """``(exit code, stdout)`` of ``spec`` on ``backend``, or the refusal's text."""
    try:
        result = backend.run(spec)
    except (SandboxError, PolicyError) as error:
        return str(error)
    return result.exit_code, result.stdout


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("level", ["standard", "locked"])
@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_a_host_change_after_entering_ahead_is_seen(
    tmp_path: Path, base: Path, name: str, level: str, change: str
) -> None:
    require_backend(name)
    require_entering_ahead()
    host_change = CHANGES[change](base)
    spec = _spec(tmp_path, base, level)
    backend = BACKENDS[name]()
    try:
        backend.check(spec.policy)
        os.utime(base)
        time.sleep(SETTLE)  # then settled: the first command's reading of the host is kept
        first = _outcome(backend, spec)
        second = _outcome(backend, spec)  # claims a sandbox entered ahead, the reading kept
        wait_for_a_sandbox_entered_ahead(backend)
        host_change()
        changed = _outcome(backend, spec)
    finally:
        backend.close()
    cold = BACKENDS[name](warm=False)
    try:
        expected = _outcome(cold, spec)
    finally:
        cold.close()
    assert first == second == (0, "public\npublic\nend\n")
    assert "secret" not in str(changed), changed
    if isinstance(changed, str):  # refused: as a cold start on the changed host is
        assert isinstance(expected, str), (changed, expected)
    elif not isinstance(expected, str):
        assert changed == expected
