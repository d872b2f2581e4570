"""Snapshots of cleanroom output through syrupy: creation, comparison, --snapshot-update, unused
snapshots, whole workspace trees, and stability across machines (temp paths, seeds, durations)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

TESTS = """
import pytest
from pytest_cleanroom import scenario

def test_stdout(cleanroom, snapshot):
    result = cleanroom.run(["sh", "-c", "echo hello; echo world"])
    assert result.stdout == snapshot

def test_normalised(cleanroom, workspace, tmp_path, cleanroom_snapshot):
    workspace.write("host.txt", f"written in {workspace.root} under {tmp_path}\\n")
    result = cleanroom.run(
        ["sh", "-c", 'echo "arg $1, seed $CLEANROOM_SEED"; echo "took 0.42s"; pwd > where.txt',
         "sh", str(tmp_path / "input")]
    )
    assert result == cleanroom_snapshot
    assert workspace == cleanroom_snapshot

def test_tree(cleanroom, workspace, workspace_snapshot):
    workspace.write("src/app.py", "print('hi')\\n")
    cleanroom.run("mkdir -p out && cp src/app.py out/ && chmod 755 out/app.py && "
                  "printf '\\\\000\\\\001' > out/blob && ln -s app.py out/latest")
    assert workspace == workspace_snapshot

def test_scenario(cleanroom, cleanroom_snapshot):
    result = cleanroom.run_scenario(
        scenario("s").step("a", "echo one").step("b", "echo two >&2; exit 1")
    )
    assert result == cleanroom_snapshot
"""


@pytest.fixture(autouse=True)
def _not_an_xdist_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    # When this suite runs under xdist, the inner in-process runs inherit the worker's
    # environment, and syrupy would then keep its report for a controller that is not there.
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)


def snap_file(pytester: pytest.Pytester) -> Path:
    return pytester.path / "__snapshots__" / "test_snaps.ambr"


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def test_create_compare_update_and_unused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_snaps=TESTS)
    created = run(pytester, "--snapshot-update")
    created.assert_outcomes(passed=4)
    created.stdout.fnmatch_lines(["*5 snapshots generated*"])
    text = snap_file(pytester).read_text()
    assert "# name: test_stdout\n" in text
    assert "written in <workspace> under <tmp_path>" in text  # host paths in a file
    assert "arg <tmp_path>/input, seed <seed>" in text  # a host path and the seed in stdout
    assert "took <duration>" in text
    assert str(pytester.path) not in text  # nothing machine-specific was stored

    run(pytester).assert_outcomes(passed=4)

    # A changed output fails with syrupy's diff.
    pytester.makepyfile(test_snaps=TESTS.replace("echo world", "echo there"))
    changed = run(pytester)
    changed.assert_outcomes(passed=3, failed=1)
    changed.stdout.fnmatch_lines(["*- world*", "*+ there*"])

    # A removed test leaves an unused snapshot, reported and then deleted on update.
    pytester.makepyfile(test_snaps=TESTS.split("def test_tree")[0])
    unused = run(pytester)
    unused.stdout.fnmatch_lines(["*2 snapshots unused*", "*Re-run pytest with --snapshot-update*"])
    pruned = run(pytester, "--snapshot-update")
    pruned.stdout.fnmatch_lines(["*unused snapshot* deleted*"])
    assert "test_tree" not in snap_file(pytester).read_text()
    run(pytester).assert_outcomes(passed=2)


def test_snapshots_are_stable_across_temp_dirs_and_seeds(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_snaps=TESTS)
    first = pytester.path / "base-one"
    second = pytester.path / "elsewhere" / "base-two"
    second.parent.mkdir()
    run(pytester, "--snapshot-update", f"--basetemp={first}", "--cleanroom-seed=12345")
    # Another base directory (another machine's temp path) and another seed: still equal.
    again = run(pytester, f"--basetemp={second}", "--cleanroom-seed=987654321")
    again.assert_outcomes(passed=4)


def test_workspace_tree_content(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_snaps=TESTS)
    run(pytester, "--snapshot-update", "-k", "test_tree").assert_outcomes(passed=1)
    text = snap_file(pytester).read_text()
    tree = text.split("# name: test_tree\n", 1)[1].split("# ---", 1)[0]
    assert "dir  0755 out" in tree
    assert "file 0755 out/app.py (12 bytes, sha256 " in tree
    assert "| print('hi')" in tree
    assert "out/blob (2 bytes, sha256 " in tree
    assert "[binary]" in tree
    assert "link      out/latest -> app.py" in tree
    assert "file 0644 src/app.py" in tree or "file 0664 src/app.py" in tree

    # One changed byte in one file fails the tree comparison and names the file.
    pytester.makepyfile(test_snaps=TESTS.replace("print('hi')", "print('hI')"))
    changed = run(pytester, "-k", "test_tree")
    changed.assert_outcomes(failed=1)
    changed.stdout.fnmatch_lines(["*src/app.py*"])


def test_tree_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_snaps="""
        def test_opts(cleanroom, workspace, workspace_snapshot):
            cleanroom.run("mkdir -p build && echo obj > build/a.o && echo 12345678 > long.txt")
            assert workspace == workspace_snapshot(tree_exclude=["build"], max_text_bytes=4)
            assert workspace == workspace_snapshot
        """
    )
    run(pytester, "--snapshot-update").assert_outcomes(passed=1)
    text = snap_file(pytester).read_text()
    first, second = text.split("# name: test_opts.1\n")
    assert "build" not in first
    assert "long.txt (9 bytes, sha256 " in first
    assert "[over 4 bytes, not shown]" in first
    assert "build/a.o" in second
    assert "| 12345678" in second
    assert "dir  0755 .home" in first  # tree_exclude replaces the default list...
    assert ".home" not in second  # ...which leaves the engine's HOME out
    run(pytester).assert_outcomes(passed=1)


def test_plain_syrupy_extension_for_trees(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_snaps="""
        from pytest_cleanroom.snapshot import WorkspaceSnapshotExtension

        def test_ext(workspace, snapshot):
            workspace.write("a.txt", "alpha\\n")
            assert workspace == snapshot.use_extension(WorkspaceSnapshotExtension)
        """
    )
    run(pytester, "--snapshot-update").assert_outcomes(passed=1)
    assert "| alpha" in snap_file(pytester).read_text()
    run(pytester).assert_outcomes(passed=1)


def test_plain_extension_is_stable_even_when_a_matcher_is_lost(pytester: pytest.Pytester) -> None:
    """syrupy's use_extension drops a per-call matcher; the extension still writes its own root
    and the temporary directories as placeholders, so the snapshot holds on another machine."""
    pytester.makepyfile(
        test_snaps="""
        from pytest_cleanroom.snapshot import Normaliser, WorkspaceSnapshotExtension
        from pytest_cleanroom.snapshot.views import cleanroom_matcher

        def test_bare(workspace, snapshot):
            workspace.write("a.txt", f"in {workspace.root}/out\\n")
            assert workspace == snapshot.use_extension(WorkspaceSnapshotExtension)

        def test_lost_matcher(workspace, snapshot):
            workspace.write("a.txt", f"made in {workspace.root} in 0.5s\\n")
            m = cleanroom_matcher(Normaliser.for_run(workspace=workspace.root))
            assert workspace == snapshot(matcher=m).use_extension(WorkspaceSnapshotExtension)

        def test_kept_matcher(workspace, snapshot):
            workspace.write("a.txt", f"made in {workspace.root} in 0.5s\\n")
            m = cleanroom_matcher(Normaliser.for_run(workspace=workspace.root))
            assert workspace == snapshot(matcher=m, extension_class=WorkspaceSnapshotExtension)
        """
    )
    run(pytester, "--snapshot-update", f"--basetemp={pytester.path / 'one'}").assert_outcomes(
        passed=3
    )
    text = snap_file(pytester).read_text()
    assert "| in <workspace>/out\n" in text
    assert "| made in <workspace> in 0.5s" in text  # the lost matcher: paths still normalised
    assert "| made in <workspace> in <duration>" in text  # the kept one did its work
    assert str(pytester.path) not in text
    run(pytester, f"--basetemp={pytester.path / 'two'}").assert_outcomes(passed=3)


def test_snapshots_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_snaps=TESTS)
    run(pytester, "--snapshot-update").assert_outcomes(passed=4)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=4)
