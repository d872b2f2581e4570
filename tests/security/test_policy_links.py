"""Links on the host never weaken a policy's hidden, readable and writable paths.

Each case builds a small tree under ``/var/tmp`` (the test's ``/tmp`` is private to every
sandbox) with links where a red-team review put them, and runs a probe under a policy naming
those paths, on every local backend, cold and warm, and on the container backends (whose binds
come from the host, links and all), under ``standard`` and ``locked``. Either
the probe runs and the stronger isolation holds (a hidden path is hidden where its links lead,
a path let through inside a hidden directory is there and nothing else is), or the command is
refused before anything runs with one :class:`PolicyError` naming the field, the path, where it
leads and the fix (never a set-up error of the sandbox tool). The workspace's ``ran`` file tells
whether the probe ran.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_cleanroom import Policy
from pytest_cleanroom.backends import _nsinit_native, get_backend
from pytest_cleanroom.backends.base import Backend, Mount
from pytest_cleanroom.errors import PolicyError
from tests.conftest import require
from tests.security.backends import STARTS, probe_spec, require_backend

#: Every way a local backend starts a command (:data:`STARTS`), and the container backends.
EVERY_START = (*sorted(STARTS), "docker", "podman")

pytestmark = pytest.mark.integration

#: Longer than the finest time stamp granularity the engine allows for (see lookups.py).
SETTLE = 0.05


@dataclass
class Case:
    """The paths a policy names (relative to the case's directory), the probe's script (run
    there) and what must come of it: its stdout, or the parts of the refusal's message."""

    hidden: tuple[str, ...]
    script: str
    stdout: str = ""
    #: The files the probe tries to read first (it prints what it read).
    secrets: tuple[str, ...] = ()
    readable: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()
    #: Files the probe must have written on the host (relative to the case's directory).
    written: tuple[str, ...] = field(default=())


def _secret(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    path.write_text("secret\n")
    path.chmod(0o644)  # anyone may read it, the sandbox's unprivileged user too: only hidden


def _tree(base: Path) -> None:
    """``closed`` (hidden) holding ``secret``, ``pub`` and a writable ``out``; ``open`` (seen)
    holding ``secret`` and ``note``."""
    _secret(base / "closed" / "secret")
    (base / "closed" / "pub").write_text("public\n")
    (base / "closed" / "pub").chmod(0o644)
    (base / "closed" / "out").mkdir()
    (base / "closed" / "out").chmod(0o777)  # written by the sandbox's user (nobody under locked)
    _secret(base / "open" / "secret")
    (base / "open" / "note").write_text("note\n")
    (base / "open" / "note").chmod(0o644)


def _link(base: Path, name: str, target: str) -> None:
    (base / name).symlink_to(target if target.startswith("/") else base / target)


#: What tries each case's secrets: prints each one it read.
READ = 'for f in "$@"; do cat "$f" 2>/dev/null; done; '
HIDDEN = ("closed/secret", "link/secret")
#: Whether anything can be created where a hidden directory was.
WRITE = "touch closed/new 2>/dev/null && echo wrote closed; "

CASES: dict[str, tuple[Callable[[Path], None], Case]] = {
    # A hidden link to a hidden directory: hidden where it leads, the link left as it is.
    "hidden-link-to-hidden-dir": (
        lambda base: _link(base, "link", "closed"),
        Case(
            hidden=("closed", "link"),
            script=READ + "test -L link && echo link kept",
            stdout="link kept\n",
            secrets=HIDDEN,
        ),
    ),
    # A hidden link to a directory the sandbox sees otherwise: that directory is hidden.
    "hidden-link-to-seen-dir": (
        lambda base: _link(base, "link", "open"),
        Case(hidden=("link",), script=READ + "ls open", secrets=("open/secret", "link/secret")),
    ),
    # A hidden link to a readable path: the two cannot both hold.
    "hidden-link-to-readable": (
        lambda base: _link(base, "link", "open"),
        Case(
            hidden=("link",),
            readable=("open",),
            script="true",
            refused=("hidden_paths", "link", "/open", "readable_paths", "remove"),
        ),
    ),
    # A hidden link to the root: no hidden path can cover what the sandbox makes itself.
    "hidden-link-to-root": (
        lambda base: _link(base, "link", "/"),
        Case(hidden=("link",), script="true", refused=("hidden_paths", "link", "'/'", "remove")),
    ),
    # A readable file and directory inside a hidden directory: there, read-only, and nothing
    # else of the hidden directory is.
    "readable-inside-hidden": (
        lambda base: None,
        Case(
            hidden=("closed",),
            readable=("closed/pub", "closed/out"),
            script=READ + WRITE + "cat closed/pub; test -d closed/out && echo out seen",
            stdout="public\nout seen\n",
            secrets=HIDDEN,
        ),
    ),
    # A writable directory inside a hidden directory: there, writable; the rest hidden.
    "writable-inside-hidden": (
        lambda base: None,
        Case(
            hidden=("closed",),
            writable=("closed/out",),
            script=READ + WRITE + "echo made > closed/out/made && echo made",
            stdout="made\n",
            secrets=HIDDEN,
            written=("closed/out/made",),
        ),
    ),
    # A readable link into a hidden directory: a link never lets a hidden path through.
    "readable-link-into-hidden": (
        lambda base: _link(base, "via", "closed"),
        Case(
            hidden=("closed",),
            readable=("via",),
            script="true",
            refused=("readable_paths", "via", "/closed", "hidden_paths", "itself in"),
        ),
    ),
    # A writable link into a hidden directory: refused the same way.
    "writable-link-into-hidden": (
        lambda base: _link(base, "via", "closed/out"),
        Case(
            hidden=("closed",),
            writable=("via",),
            script="true",
            refused=("writable_paths", "via", "/closed/out", "itself in writable_paths"),
        ),
    ),
    # A readable path inside a hidden directory reached through a link in it (to a directory
    # seen anyway): the sandbox binds inside a hidden directory where a path is named, and the
    # link is not there; the fix names the real path.
    "readable-through-link-inside-hidden": (
        lambda base: (_link(base, "closed/alias", "open"), (base / "open/x").mkdir()),
        Case(
            hidden=("closed",),
            readable=("closed/alias/x",),
            script="true",
            refused=("readable_paths", "closed/alias/x", "/open/x", "instead"),
        ),
    ),
    # A hidden path inside a readable link to a seen directory: hidden where it leads.
    "hidden-inside-readable-link": (
        lambda base: _link(base, "rlink", "open"),
        Case(
            hidden=("rlink/secret",),
            readable=("rlink",),
            script=READ + "cat rlink/note",
            stdout="note\n",
            secrets=("rlink/secret", "open/secret"),
        ),
    ),
    # A hidden link loop, and a dangling hidden link: nothing to hide (nothing reads them).
    "hidden-link-loop": (
        lambda base: (_link(base, "a", "b"), _link(base, "b", "a")),
        Case(hidden=("a",), script=READ + "cat a 2>/dev/null || echo loop", stdout="loop\n"),
    ),
    "hidden-dangling-link": (
        lambda base: _link(base, "dangling", "nowhere"),
        Case(hidden=("dangling",), script=READ + "test -L dangling && echo kept", stdout="kept\n"),
    ),
}


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory the sandbox can read, holding the tree of :func:`_tree`."""
    directory = Path(tempfile.mkdtemp(prefix="cleanroom-links-", dir="/var/tmp"))
    directory.chmod(0o755)
    _tree(directory)
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def policy_for(level: str, base: Path, case: Case) -> Policy:
    """``level`` with the case's paths (the case's directory readable: allow-list views see
    only the system directories otherwise)."""
    fields = Policy.level(level).model_dump()
    fields["hidden_paths"] = [*fields["hidden_paths"], *(str(base / p) for p in case.hidden)]
    fields["readable_paths"] = [str(base), *(str(base / p) for p in case.readable)]
    fields["writable_paths"] = [str(base / p) for p in case.writable]
    return Policy.model_validate(fields)


def backend_for(start: str) -> Backend:
    """A backend starting commands as ``start`` says, once it can run here."""
    require_backend(start.split("-")[0])
    if start.endswith("-warm"):
        require(os.geteuid() == 0, "root: only root's commands enter warm sandboxes")
        require(_nsinit_native.program()[0] is not None, "the compiled set-up step")
    return STARTS[start]() if start in STARTS else get_backend(start)


def probe(base: Path, script: str, secrets: tuple[str, ...]) -> tuple[str, ...]:
    """The probe's argv: mark the workspace, go to ``base``, run ``script`` with ``secrets``
    as arguments."""
    body = f"touch /workspace/ran; cd {base} || exit 9; {script}"
    return ("/bin/sh", "-c", body, "probe", *(str(base / n) for n in secrets))


@pytest.mark.parametrize("level", ["standard", "locked"])
@pytest.mark.parametrize("start", EVERY_START)
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_link_never_weakens_the_policy(
    tmp_path: Path, base: Path, start: str, level: str, name: str
) -> None:
    backend = backend_for(start)
    make, case = CASES[name]
    make(base)
    policy = policy_for(level, base, case)
    spec = probe_spec(probe(base, case.script, case.secrets), tmp_path, policy)
    try:
        backend.check(policy)
        if case.refused:
            with pytest.raises(PolicyError) as refused:
                backend.run(spec)
            for part in case.refused:
                assert part in str(refused.value), str(refused.value)
            assert not (tmp_path / "ran").exists(), "the command ran"
            return
        outcomes = [backend.run(spec)]
        if start.endswith("-warm"):  # the second command enters the sandbox kept warm
            outcomes.append(backend.run(spec))
    finally:
        backend.close()
    for outcome in outcomes:
        assert (outcome.exit_code, outcome.stdout) == (0, case.stdout), outcome.stderr
    for path in case.written:
        assert (base / path).read_text() == "made\n"


def _retarget(link: Path, target: Path) -> None:
    link.with_name(link.name + "+").symlink_to(target)
    os.replace(link.with_name(link.name + "+"), link)


@pytest.mark.parametrize("level", ["standard", "locked"])
@pytest.mark.parametrize("start", EVERY_START)
def test_a_hidden_link_pointed_elsewhere_between_two_commands(
    tmp_path: Path, base: Path, start: str, level: str
) -> None:
    """The host points a hidden link elsewhere between two commands of one backend (its warm
    sandbox kept): the second command hides where the link leads now (and shows what it led
    to before), and the third, after the link was pointed at a readable path, is refused as
    a cold start would be."""
    backend = backend_for(start)
    (base / "other").mkdir(mode=0o755)
    (base / "other" / "secret").write_text("other secret\n")
    (base / "other" / "secret").chmod(0o644)
    _link(base, "link", "open")
    policy = policy_for(level, base, Case(hidden=("link",), readable=("closed",), script=""))
    argv = probe(base, READ + "true", ("open/secret", "other/secret"))
    spec = probe_spec(argv, tmp_path, policy)
    try:
        backend.check(policy)
        time.sleep(SETTLE)  # the first command's plan is then kept for the second
        first = backend.run(spec)
        _retarget(base / "link", base / "other")
        second = backend.run(spec)
        _retarget(base / "link", base / "closed")
        with pytest.raises(PolicyError) as refused:
            backend.run(spec)
    finally:
        backend.close()
    assert (first.exit_code, first.stdout) == (0, "other secret\n"), first.stderr
    assert (second.exit_code, second.stdout) == (0, "secret\n"), second.stderr
    message = str(refused.value)
    for part in ("hidden_paths", str(base / "link"), str(base / "closed"), "readable_paths"):
        assert part in message, message


@pytest.mark.parametrize("level", ["standard", "locked"])
@pytest.mark.parametrize("start", EVERY_START)
def test_a_mount_inside_a_hidden_directory_is_there_alone(
    tmp_path: Path, base: Path, start: str, level: str
) -> None:
    """A command's mount (a service's socket directory, say) whose destination is inside a
    hidden directory is there, writable, and nothing else of the hidden directory is."""
    backend = backend_for(start)
    sockets = base / "sockets"
    sockets.mkdir(mode=0o777)
    sockets.chmod(0o777)  # written by the sandbox's user (nobody under locked)
    policy = policy_for(level, base, Case(hidden=("closed",), script=""))
    script = READ + WRITE + "echo hi > closed/sock/note && ls closed"
    spec = probe_spec(probe(base, script, HIDDEN), tmp_path, policy)
    spec = dataclasses.replace(spec, mounts=(Mount(sockets, str(base / "closed/sock"), True),))
    try:
        result = backend.run(spec)
    finally:
        backend.close()
    assert (result.exit_code, result.stdout) == (0, "sock\n"), result.stderr
    assert (sockets / "note").read_text() == "hi\n"
    assert not (base / "closed" / "sock").exists()  # nothing made on the host


@pytest.mark.parametrize("level", ["standard", "locked"])
@pytest.mark.parametrize("start", EVERY_START)
def test_a_hidden_directory_that_becomes_a_link_into_a_hidden_one(
    tmp_path: Path, base: Path, start: str, level: str
) -> None:
    """The host replaces a hidden directory by a link to another hidden one between two
    commands of one backend (its warm sandbox kept): the second command runs, and neither
    directory's secret shows (before, the second command failed to set up)."""
    backend = backend_for(start)
    (base / "gone").mkdir(mode=0o755)
    _secret(base / "gone" / "secret")
    policy = policy_for(level, base, Case(hidden=("closed", "gone"), script=""))
    script = READ + "if test -L gone; then echo link; fi"
    spec = probe_spec(probe(base, script, ("closed/secret", "gone/secret")), tmp_path, policy)
    try:
        backend.check(policy)
        time.sleep(SETTLE)  # the first command's plan is then kept for the second
        first = backend.run(spec)
        shutil.rmtree(base / "gone")
        _link(base, "gone", "closed")
        second = backend.run(spec)
    finally:
        backend.close()
    assert (first.exit_code, first.stdout) == (0, ""), first.stderr
    assert (second.exit_code, second.stdout) == (0, "link\n"), second.stderr
