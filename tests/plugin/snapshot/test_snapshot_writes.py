"""Snapshot files are written only as regular files in a real snapshot directory (#19): a link
(to a file outside), a FIFO or a linked ``__snapshots__`` is refused with one error naming it,
and what it points to is left alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

TEST = """
def test_plain(snapshot):
    assert "new value" == snapshot

def test_tree(workspace, workspace_snapshot):
    workspace.write("a.txt", "a\\n")
    assert workspace == workspace_snapshot
"""


@pytest.fixture(autouse=True)
def _not_an_xdist_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    # The inner runs would otherwise keep syrupy's report for an xdist controller.
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)


def update(pytester: pytest.Pytester) -> pytest.RunResult:
    pytester.makepyfile(test_snaps=TEST)
    return pytester.runpytest("-p", "no:cacheprovider", "--snapshot-update")


def refused(result: pytest.RunResult) -> str:
    """The one error line of a refused snapshot write (and no traceback)."""
    text = "\n".join(result.outlines + result.errlines)
    assert result.ret == 1, text
    assert "INTERNALERROR" not in text
    errors = [line for line in result.outlines if line.startswith("ERROR snapshots not written")]
    assert len(errors) == 1, text
    return errors[0]


def test_a_snapshot_file_linked_outside_is_refused_and_its_target_kept(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    victim = tmp_path_factory.mktemp("outside") / "victim.txt"
    victim.write_text("precious\n")
    (pytester.path / "__snapshots__").mkdir()
    link = pytester.path / "__snapshots__" / "test_snaps.ambr"
    link.symlink_to(victim)
    error = refused(update(pytester))
    assert victim.read_text() == "precious\n"
    assert link.is_symlink()
    assert f"{link}: the snapshot file is a symbolic link (to {victim})" in error
    assert "remove it and run with --snapshot-update again" in error


def test_a_linked_snapshot_directory_is_refused(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside-dir")
    (pytester.path / "__snapshots__").symlink_to(outside)
    error = refused(update(pytester))
    assert list(outside.iterdir()) == []
    assert "the snapshot directory is a symbolic link" in error


def test_a_fifo_at_the_snapshot_path_is_refused(pytester: pytest.Pytester) -> None:
    (pytester.path / "__snapshots__").mkdir()
    fifo = pytester.path / "__snapshots__" / "test_snaps.ambr"
    os.mkfifo(fifo)
    result = update(pytester)
    assert result.ret != 0
    text = "\n".join(result.outlines + result.errlines)
    assert f"{fifo}: the snapshot file is not a regular file" in text
    assert "refusing to read a snapshot from it" in text


def test_a_regular_snapshot_file_is_written_and_kept_up_to_date(pytester: pytest.Pytester) -> None:
    result = update(pytester)
    assert result.ret == 0, result.stdout.str()
    written = pytester.path / "__snapshots__" / "test_snaps.ambr"
    assert written.is_file()
    assert not written.is_symlink()
    assert "'new value'" in written.read_text()
    check = pytester.runpytest("-p", "no:cacheprovider")
    check.assert_outcomes(passed=2)
    # A snapshot no test uses any more is removed from the file, through the same path.
    pytester.makepyfile(test_snaps=TEST.split("def test_tree")[0])
    pruned = pytester.runpytest("-p", "no:cacheprovider", "--snapshot-update")
    assert pruned.ret == 0, pruned.stdout.str()
    assert "test_tree" not in written.read_text()
    assert Path(written).read_text().count("# name:") == 1
