"""The repeat check: every command runs a second time, with the same seed, in a copy of the
workspace as it was before the command; any difference in exit code, output or resulting workspace
is reported with the first differing line or file. The copy is made whole for the first command;
after runs that agree it already equals the workspace, and later commands only bring it up to
date (:mod:`.mirror`). What changed in either tree is known from inotify events
(:mod:`.tree`), else from comparing every entry's ``lstat``.

:class:`RepeatChecker` needs nothing from pytest; the plugin attaches one to a test's cleanroom.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..result import CleanroomAssertionError, RunResult
from .entries import apply_changes
from .mirror import Mirror
from .overlay import OverlayPair, OverlayUnavailableError, unavailable_reason
from .tree import Tree, changes_since
from .treediff import TreeComparison, compare_entries, scratch_parent

if TYPE_CHECKING:
    from ..engine import Cleanroom

T = TypeVar("T")
ReplayFactory = Callable[[Path], "Cleanroom"]
ResultsOf = Callable[[T], Sequence["RunResult | None"]]

_CHECKERS: weakref.WeakKeyDictionary[Any, RepeatChecker] = weakref.WeakKeyDictionary()


class RepeatCheckError(CleanroomAssertionError):
    """A command gave a different result when run again with the same seed."""


def checker_for(cleanroom: Cleanroom) -> RepeatChecker | None:
    """The :class:`RepeatChecker` attached to ``cleanroom``, if any."""
    try:
        return _CHECKERS.get(cleanroom)
    except TypeError:  # not weak-referenceable: nothing can be attached to it
        return None


@dataclass(frozen=True)
class Mismatch:
    """One difference between the first run and the replay."""

    unit: str
    seed: int | None
    detail: str

    def describe(self) -> str:
        seed = f" with seed {self.seed}" if self.seed is not None else ""
        return (
            f"repeat check: {self.unit} is not deterministic: run a second time{seed} in a copy "
            f"of the workspace as it was before, it {self.detail}"
        )


class RepeatChecker:
    """Runs each unit of work twice and compares. ``replay_factory(path)`` must return a cleanroom
    equal to the original (policy, backend, seed, environment, services) but rooted at ``path``.
    """

    def __init__(
        self, cleanroom: Cleanroom, replay_factory: ReplayFactory, *, copy_on_write: bool = True
    ) -> None:
        self.cleanroom = cleanroom
        self.replay_factory = replay_factory
        self.copy_on_write = copy_on_write
        self.overlay_units = 0  # units whose runs started from overlays, not from a copy
        self._overlays: OverlayPair | None = None
        self.mismatches: list[Mismatch] = []
        self.units_checked = 0
        self._inside = 0
        self._lock = threading.Lock()
        self._original_run: Callable[..., RunResult] | None = None
        self._scratch: Path | None = None
        self._mirror: Mirror | None = None  # the copy, when known to equal the workspace
        self._copy: Mirror | None = None  # the copy, whatever it holds
        self._tree: Tree | None = None  # the workspace's entries

    # -- wiring ----------------------------------------------------------------------------------

    def attach(self) -> RepeatChecker:
        """Make every ``cleanroom.run(...)`` a checked unit."""
        original_run = self.cleanroom.run
        self._original_run = original_run

        def checked_run(cmd: Any, **kwargs: Any) -> RunResult:
            __tracebackhide__ = True
            return self.check_unit(
                lambda target: (original_run if target is self.cleanroom else target.run)(
                    cmd, **kwargs
                ),
                describe=_describe_command(cmd),
                results_of=lambda result: [result],
            )

        try:
            self.cleanroom.run = checked_run  # type: ignore[method-assign]
        except AttributeError as exc:
            raise TypeError(
                f"cannot attach the repeat check to {type(self.cleanroom).__name__}: {exc}"
            ) from None
        _CHECKERS[self.cleanroom] = self
        return self

    # -- checking --------------------------------------------------------------------------------

    def check_unit(
        self,
        unit: Callable[[Cleanroom], T],
        *,
        describe: str,
        results_of: Callable[[T], Sequence[RunResult | None]],
    ) -> T:
        """Run ``unit`` on the cleanroom, then on a replay cleanroom in a copy of the workspace
        taken before; raise :class:`RepeatCheckError` if the two differ."""
        __tracebackhide__ = True
        with self._lock:
            nested = self._inside > 0
            if not nested:
                self._inside += 1
        if nested:  # part of a unit already being checked (a concurrent group's member)
            return unit(self.cleanroom)
        try:
            root = _workspace_root(self.cleanroom)
            overlays = self._mounted_overlays(root)
            if overlays is not None:
                first, detail = self._check_on_overlays(overlays, unit, results_of)
            else:
                first, detail = self._check_on_copy(root, unit, results_of)
        finally:
            with self._lock:
                self._inside -= 1
        self.units_checked += 1
        if detail is not None:
            seeds = [r.seed for r in results_of(first) if r is not None]
            mismatch = Mismatch(describe, seeds[0] if seeds else None, detail)
            self.mismatches.append(mismatch)
            raise RepeatCheckError(mismatch.describe())
        return first

    def _check_on_copy(
        self, root: Path, unit: Callable[[Cleanroom], T], results_of: ResultsOf[T]
    ) -> tuple[T, str | None]:
        """The first run in the workspace, the second in a copy of it kept up to date."""
        mirror = self._mirror_of(root)
        self._mirror = None  # until the runs are known to have left both trees equal
        replay = self.replay_factory(mirror.path)
        source, copy = mirror.source, mirror.copy
        root_start = time.time_ns()
        first = unit(self.cleanroom)
        copy_start = time.time_ns()
        second = unit(replay)
        changed = changes_since(source, root_start) | changes_since(copy, copy_start)
        rewrite = _root_rewrite(copy.root, source.root)
        detail = _compare_results(results_of(first), results_of(second), rewrite)
        if detail is None:
            trees = compare_entries(
                source.root, source.entries, source.taken_ns, copy.root, copy.entries, changed,
                describe=_first_difference, rewrite_two=rewrite,
            )  # fmt: skip
            detail = _tree_difference(trees)
            if detail is None:
                with contextlib.suppress(OSError):  # else the next unit copies afresh
                    mirror.settle(trees)
                    self._mirror = mirror
        return first, detail

    def _mounted_overlays(self, root: Path) -> OverlayPair | None:
        """Both copy-on-write views of the workspace, mounted; ``None`` where they cannot be
        made (the unit then runs on a copy)."""
        if not self.copy_on_write or not self.cleanroom.can_bind_workspace:
            return None
        if unavailable_reason(root) is not None:
            return None
        if self._overlays is None or self._overlays.lower != root:
            if self._overlays is not None:
                self._overlays.close()
            self._overlays = OverlayPair.create(root)
        try:
            self._overlays.mount()
        except OverlayUnavailableError:
            return None
        self._mirror = None  # the workspace changes under a copy nobody keeps up to date
        return self._overlays

    def _check_on_overlays(
        self, pair: OverlayPair, unit: Callable[[Cleanroom], T], results_of: ResultsOf[T]
    ) -> tuple[T, str | None]:
        """Both runs in overlays of the workspace; then the first run's changes applied to it."""
        first_view, second_view = pair.first, pair.second
        changed_first: set[str] | None = None
        try:
            replay = self.replay_factory(second_view.merged)
            with self.cleanroom.bind_workspace(first_view.merged):
                first = unit(self.cleanroom)
            second = unit(replay)
            changed_first = first_view.changes(pair.lower)
            changed = changed_first | second_view.changes(pair.lower)
            rewrite = _root_rewrite(second_view.merged, first_view.merged)
            detail = _compare_results(results_of(first), results_of(second), rewrite)
            if detail is None:
                trees = compare_entries(
                    first_view.merged, first_view.keys(changed), 0,
                    second_view.merged, second_view.keys(changed), changed,
                    describe=_first_difference, rewrite_two=rewrite,
                )  # fmt: skip
                detail = _tree_difference(trees)
        finally:
            try:  # the workspace gets what the first run did, whatever happened since
                if changed_first is None:
                    changed_first = first_view.changes(pair.lower)
                apply_changes(first_view.merged, pair.lower, changed_first, pair.staging())
            finally:
                pair.unmount()
        self.overlay_units += 1
        return first, detail

    def _mirror_of(self, root: Path) -> Mirror:
        """The copy of the workspace as it is now: the last unit's, brought up to date, when
        its runs agreed; else a fresh one. The place is chosen once per checker (RAM when it
        has room, else beside the workspace), so that the replay cleanroom always works in the
        same directory."""
        if self._tree is None or self._tree.root != root:
            self._tree = Tree(root)
        tree = self._tree
        changed = changes_since(tree, tree.taken_ns)  # what the test wrote since the last unit
        if self._mirror is not None and self._mirror.catch_up(changed):
            return self._mirror
        if self._scratch is None:
            size = sum(key[2] for key in tree.entries.values() if stat.S_ISREG(key[0]))
            parent = scratch_parent(root, size)
            self._scratch = Path(tempfile.mkdtemp(prefix=".cleanroom-repeat-", dir=parent))
        if self._copy is not None:
            self._copy.close()
        path = self._scratch / root.name
        if path.exists():
            shutil.rmtree(path)
        self._copy = Mirror.create(tree, path)
        return self._copy

    def close(self) -> None:
        """Close the replay cleanrooms and remove the scratch directory."""
        close_replays = getattr(self.replay_factory, "close", None)
        if close_replays is not None:
            close_replays()
        self._mirror = None
        if self._overlays is not None:
            self._overlays.close()
            self._overlays = None
        for tree in (self._copy, self._tree):
            if tree is not None:
                tree.close()
        self._copy = self._tree = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


def _workspace_root(cleanroom: Cleanroom) -> Path:
    return Path(os.fspath(cleanroom.workspace))


def _describe_command(cmd: Any) -> str:
    if isinstance(cmd, str):
        return f"command `{cmd}`"
    import shlex

    return f"command `{shlex.join(str(a) for a in cmd)}`"


def _root_rewrite(old: Path, new: Path) -> Callable[[bytes], bytes]:
    """Output naming the replay's own host path is not a difference."""
    before, after = os.fspath(old).encode(), os.fspath(new).encode()
    return lambda data: data.replace(before, after)


def _compare_results(
    first: Sequence[RunResult | None],
    second: Sequence[RunResult | None],
    rewrite: Callable[[bytes], bytes],
) -> str | None:
    """The first difference in exit status or output, worded to follow "it ...", or ``None``
    when the runs agree."""
    for a, b in zip(first, second, strict=False):
        if a is None or b is None:
            if (a is None) != (b is None):
                return "ran in one run but could not start in the other"
            continue
        label = f" (`{a.command_line}`)" if len(first) > 1 else ""
        if a.exit_code != b.exit_code or a.timed_out != b.timed_out:
            return (
                f"exited {_status(b)} instead of {_status(a)}{label}\n"
                f"first run:\n{a.describe()}\nsecond run:\n{b.describe()}"
            )
        for stream in ("stdout", "stderr"):
            one: bytes = getattr(a, f"{stream}_bytes")
            two = rewrite(getattr(b, f"{stream}_bytes"))
            if one != two:
                return f"wrote a different {stream}{label}: {_first_difference(one, two)}"
    return None


def _tree_difference(trees: TreeComparison) -> str | None:
    if trees.difference is None:
        return None
    return f"left a different workspace: {trees.difference}"


def _status(result: RunResult) -> str:
    return "by timeout" if result.timed_out else f"with code {result.exit_code}"


def _first_difference(one: bytes, two: bytes) -> str:
    """The first line that differs, shown from both runs."""
    a_lines = one.decode("utf-8", "replace").splitlines()
    b_lines = two.decode("utf-8", "replace").splitlines()
    for number, (x, y) in enumerate(zip(a_lines, b_lines, strict=False), start=1):
        if x != y:
            return f"first difference at line {number}:\n  first:  {x!r}\n  second: {y!r}"
    number = min(len(a_lines), len(b_lines)) + 1
    if len(a_lines) != len(b_lines):
        longer, which = (a_lines, "first") if len(a_lines) > len(b_lines) else (b_lines, "second")
        return (
            f"line {number} exists only in the {which} run: {longer[number - 1]!r} "
            f"({len(a_lines)} vs {len(b_lines)} lines)"
        )
    # Same lines, different bytes: line endings or a missing final newline.
    pairs = enumerate(zip(one, two, strict=False))
    at = next((i for i, (x, y) in pairs if x != y), min(len(one), len(two)))
    return f"bytes differ from offset {at} ({len(one)} vs {len(two)} bytes)"
