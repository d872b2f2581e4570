"""``ggen lifecycle run PHASE --watch``: run the phase again whenever the files it watches change.

A task watches its ``watch`` globs (``watch = ["src/**"]``), else its ``inputs`` (``watch =
true`` or not set); the files it declares as ``outputs`` are never watched. The files are
looked at every :data:`POLL_INTERVAL` seconds (size, modification time, inode: no inotify,
so any filesystem works); a change starts a new run once nothing more changed for the debounce
time. A run still going when files change is stopped first (a dev server is restarted). Ctrl-C
(or SIGTERM) stops the run and the watching; the exit status is then 130.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from . import files
from .errors import ConfigError, LifecycleError
from .results import EXIT_INTERRUPTED

if TYPE_CHECKING:
    from .config import Project
    from .run_command import RunArgs
    from .runner import Runner

#: Seconds between two looks at the watched files.
POLL_INTERVAL = 0.25
#: Seconds without a further change before a run starts (``--debounce``).
DEFAULT_DEBOUNCE = 0.3
#: Changed paths named in the "changed:" line before "(+N more)".
SHOWN_CHANGES = 5

Snapshot = dict[str, tuple[int, int, int]]


@dataclass(frozen=True)
class WatchedFiles:
    """The globs one task watches, relative to its directory (outputs excluded)."""

    label: str
    cwd: Path
    patterns: tuple[str, ...]

    def paths(self) -> list[str]:
        found, _ = files.expand(self.cwd, self.patterns)
        return [os.path.join(str(self.cwd), rel) for rel in found]


def watched_files(project: Project, args: RunArgs) -> list[WatchedFiles]:
    """What the tasks of ``args.phases`` watch; :class:`ConfigError` when none watches anything."""
    from .graph import build_graph

    graph = build_graph(
        project, args.phases, workspace=args.workspace, environment=args.environment
    )
    found = []
    for node in graph:
        spec = node.spec
        if node.kind != "task" or spec is None:
            continue
        globs = list(spec.watch) if isinstance(spec.watch, list) else list(spec.inputs)
        if globs:
            patterns = (*globs, *(f"!{out}" for out in spec.outputs))
            found.append(WatchedFiles(node.label, node.cwd, patterns))
    if not found:
        raise ConfigError(
            f"--watch: no task of {', '.join(args.phases)} watches files: give the phase"
            ' watch = ["src/**"] (globs to watch) or inputs = [...] in make.toml'
        )
    return found


def snapshot(watched: list[WatchedFiles]) -> Snapshot:
    """Size, modification time and inode of every watched file."""
    seen: Snapshot = {}
    for item in watched:
        for path in item.paths():
            try:
                info = os.stat(path)
            except OSError:
                continue  # gone between the walk and the look
            seen[path] = (info.st_size, info.st_mtime_ns, info.st_ino)
    return seen


def changes(before: Snapshot, after: Snapshot) -> set[str]:
    """Paths added, removed or changed between two snapshots."""
    return {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}


def describe(changed: set[str], root: Path) -> str:
    """``src/a.py, src/b.py (+3 more)`` relative to the project root."""
    names = sorted(os.path.relpath(p, root) for p in changed)
    more = len(names) - SHOWN_CHANGES
    return ", ".join(names[:SHOWN_CHANGES]) + (f" (+{more} more)" if more > 0 else "")


class Watcher:
    """Runs the phases, then again after each settled change, until stopped."""

    def __init__(
        self,
        project: Project,
        args: RunArgs,
        watched: list[WatchedFiles],
        *,
        debounce: float = DEFAULT_DEBOUNCE,
        echo: Callable[[str], None],
    ) -> None:
        self.project, self.args, self.watched = project, args, watched
        self.debounce = debounce
        self.echo = echo
        self.stopped = threading.Event()
        self._runner: Runner | None = None
        self._runner_lock = threading.Lock()

    def stop(self) -> None:
        """Stop watching and the run in progress (from a signal handler or another thread)."""
        self.stopped.set()
        self._interrupt_run()

    def loop(self) -> int:
        """Run until :meth:`stop`; the exit status (130 when stopped)."""
        baseline = snapshot(self.watched)
        while not self.stopped.is_set():
            run = threading.Thread(target=self._run_once, name="ggen-watch-run", daemon=True)
            run.start()
            changed, baseline = self._wait_for_change(baseline, run)
            if changed is None:
                break
            stopping = "stopping the run, " if run.is_alive() else ""
            label = ", ".join(self.args.phases)
            self.echo(
                f"watch: changed: {describe(changed, self.project.root)};"
                f" {stopping}running {label} again"
            )
            self._interrupt_run()
            run.join()
        self._interrupt_run()
        self.echo("watch: stopped")
        return EXIT_INTERRUPTED

    def _run_once(self) -> None:
        """One run with make.toml read afresh; an error is shown and the watching goes on."""
        from .config import load_project
        from .run_command import echo, gated_options, run_and_report

        try:
            project = load_project(self.project.root)
            options = gated_options(project, self.args)
            run_and_report(project, self.args, options, started=self._started)
        except LifecycleError as exc:  # e.g. make.toml edited into something invalid
            echo(f"ggen lifecycle: error: {exc}", err=True)
        finally:
            with self._runner_lock:
                self._runner = None

    def _started(self, runner: Runner) -> None:
        with self._runner_lock:
            self._runner = runner
            stop_now = self.stopped.is_set()
        if stop_now:
            runner.request_interrupt()

    def _interrupt_run(self) -> None:
        with self._runner_lock:
            if self._runner is not None:
                self._runner.request_interrupt()

    def _wait_for_change(
        self, baseline: Snapshot, run: threading.Thread
    ) -> tuple[set[str] | None, Snapshot]:
        """The settled set of changed paths and the snapshot after them; ``None`` when stopped."""
        changed: set[str] = set()
        last_change = 0.0
        announced = False
        for current in self._snapshots():
            if not announced and not run.is_alive() and not changed:
                count = sum(len(item.paths()) for item in self.watched)
                self.echo(f"watch: waiting for changes to {count} file(s) (Ctrl-C to stop)")
                announced = True
            new = changes(baseline, current)
            baseline = current
            if new:
                changed |= new
                last_change = time.monotonic()
            elif changed and time.monotonic() - last_change >= self.debounce:
                return changed, baseline
        run.join()
        return None, baseline

    def _snapshots(self) -> Iterator[Snapshot]:
        while not self.stopped.wait(POLL_INTERVAL):
            yield snapshot(self.watched)


def watch_run(project: Project, args: RunArgs, debounce: float) -> int:
    """``run --watch``: the exit status once Ctrl-C or SIGTERM stopped it."""
    from .run_command import echo

    watched = watched_files(project, args)
    watcher = Watcher(project, args, watched, debounce=debounce, echo=echo)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        watcher.stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return watcher.loop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
