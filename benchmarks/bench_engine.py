"""What running a command through the cleanroom engine costs, per command.

Side by side in one run, interleaved round-robin so that machine noise hits every row alike
(medians over --repeat runs of ``true``; measured, never asserted):

1. ``true`` natively (``subprocess.run``);
2. bare bubblewrap: ``bwrap --unshare-user --unshare-pid --ro-bind / / --proc /proc --dev /dev``;
3. bubblewrap with exactly the command line the engine builds under ``locked`` (the sandbox's own
   cost: namespaces and mounts; as root, started as the sandbox's unprivileged user on an
   idmapped view of the workspace), without the engine around it, cold;
4. ``Cleanroom.run`` under ``standard`` and under ``locked`` (bwrap backend): environment,
   filesystem plan, per-command cgroups, launcher, supervision, result; the command enters the
   sandbox kept warm for the policy (see ``backends/_warm.py``);
5. ``Cleanroom.run`` under ``locked`` through the ``unshare`` fallback, for reference;
6. a cold start under ``locked`` on each local backend (``warm=False``: the sandbox built for the
   command, as the first command under a policy pays once per process);
7. ``Cleanroom.run`` under ``locked`` on the container backends, ``docker`` and ``podman`` (where
   their engines answer), in the first ``--container-repeat`` rounds only (a container per
   command costs hundreds of milliseconds).

The "engine adds" column is the row's median minus bare bubblewrap's, "over native" minus native
``true``'s (goal: at most 1 ms under ``standard`` and ``locked`` warm, 5 ms for ``unshare``).

Then a suite as pytest runs one (``--suite-tests`` tests, default 200, each running three
commands): every test makes its own ``locked`` cleanroom on a fresh workspace (on the run's one
``bwrap`` backend, as the pytest plugin shares it), runs ``true`` three times and closes it, side
by side with the same test running ``true`` three times through ``subprocess.run`` (tests
alternate, so noise hits both alike). It prints the suite's wall time both ways and the median of a
test's first command and of its later ones.

Run: ``.venv/bin/python benchmarks/bench_engine.py [--repeat 200] [--container-repeat 20]
[--suite-tests 200] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_cleanroom import Cleanroom, Policy
from pytest_cleanroom.backends import get_backend
from pytest_cleanroom.backends._handoff import HANDOFF_FD, LAUNCHER_ENV, Handoff
from pytest_cleanroom.backends._nsinit_native import PROGRAM_FD
from pytest_cleanroom.backends.base import CommandSpec
from pytest_cleanroom.backends.bwrap import SECCOMP_FD, BwrapBackend
from pytest_cleanroom.backends.idmap import IdmappedView, stage_unreachable
from pytest_cleanroom.backends.local import NamespaceBackend
from pytest_cleanroom.backends.namespace.filesystem import plan
from pytest_cleanroom.backends.namespace.process_tree import wait_for_launchers
from pytest_cleanroom.backends.unshare import UnshareBackend
from pytest_cleanroom.environment import build_environment


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock seconds, and CPU seconds of the child processes it started (a launcher that
    outlives its command's result, tearing the command's namespaces down, counts once gone)."""
    cpu = _children_cpu()
    start = time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    wait_for_launchers()
    return wall, _children_cpu() - cpu


def _reserve(fds: tuple[int, ...]) -> None:
    """Hold ``fds`` on ``/dev/null`` from the start, so that no descriptor the engine opens
    takes a number :func:`_open_at` later puts a file at."""
    null = os.open(os.devnull, os.O_RDONLY)
    for fd in fds:
        if fd != null:
            os.dup2(null, fd, inheritable=False)
    if null not in fds:
        os.close(null)


def _open_at(fd_files: dict[int, str]) -> list[int]:
    """Open each file at its descriptor number, as the engine's launcher does."""
    for fd, path in fd_files.items():
        opened = os.open(path, os.O_RDONLY)
        if opened != fd:  # dup3 refuses a descriptor onto itself
            os.dup2(opened, fd, inheritable=False)
            os.close(opened)
    return list(fd_files)


def _rewound(fds: list[int]) -> tuple[int, ...]:
    """``fds``, read again from their start by the next process (they share the offset)."""
    for fd in fds:
        os.lseek(fd, 0, os.SEEK_SET)
    return tuple(fds)


def _bwrap(argv: list[str], options: dict[str, Any]) -> None:
    """bubblewrap run directly; tried again when a host mount under its recursive bind of a
    top-level directory went away meanwhile (other processes' mounts come and go: a
    bubblewrap race, not the sandbox's cost)."""
    for attempt in range(3):
        done = subprocess.run(argv, capture_output=True, check=False, **options)
        if done.returncode == 0:
            return
        if attempt == 2 or b"Unable to apply mount flags" not in done.stderr:
            raise subprocess.CalledProcessError(done.returncode, argv, done.stdout, done.stderr)
        if "pass_fds" in options:
            options = {**options, "pass_fds": _rewound(list(options["pass_fds"]))}


def _engine_row(room: Cleanroom) -> Callable[[], object]:
    return lambda: room.run(["true"]).assert_success()


def _backend_row(backend: NamespaceBackend, spec: CommandSpec) -> Callable[[], object]:
    return lambda: backend.run(spec).assert_success()


COMMANDS_PER_TEST = 3


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _thread_cpu(name: str) -> float:
    """CPU seconds of this process's live thread called ``name`` (0.0: there is none)."""
    for thread in threading.enumerate():
        if thread.name == name and thread.ident is not None:
            return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return 0.0


#: The engine's thread making launchers (and what comes with them) ahead of commands.
PREPARER_THREAD = "cleanroom-launcher-preparer"


def _suite(scratch: Path, tests: int) -> dict[str, float]:
    """Wall seconds of the whole suite both ways, the engine's per-position medians (ms), and
    its CPU per command (ms): the calling thread's, the background threads' (the launcher
    preparer's among them) and the launchers' and commands' (child processes)."""
    engine_wall = native_wall = 0.0
    first: list[float] = []
    later: list[float] = []
    caller = children = 0.0
    backend = BwrapBackend()  # one for the run, as the pytest plugin shares it between tests
    process, thread, preparer = _self_cpu(), time.thread_time(), _thread_cpu(PREPARER_THREAD)
    try:
        for index in range(tests):
            start = time.perf_counter()
            for _ in range(COMMANDS_PER_TEST):
                subprocess.run(["true"], capture_output=True, check=True)
            native_wall += time.perf_counter() - start

            start, began_cpu = time.perf_counter(), time.thread_time()
            began_children = _children_cpu()
            workspace = scratch / f"test-{index}"
            with Cleanroom(workspace, policy="locked", backend=backend, seed=1) as room:
                for position in range(COMMANDS_PER_TEST):
                    began = time.perf_counter()
                    room.run(["true"]).assert_success()
                    (first if position == 0 else later).append(time.perf_counter() - began)
            engine_wall += time.perf_counter() - start
            caller += time.thread_time() - began_cpu
            wait_for_launchers()
            children += _children_cpu() - began_children
            shutil.rmtree(workspace, ignore_errors=True)
        # Every thread but this one works for the engine only.
        background = (_self_cpu() - process) - (time.thread_time() - thread)
        preparer = _thread_cpu(PREPARER_THREAD) - preparer
    finally:
        backend.close()
    per_command = 1000 / (tests * COMMANDS_PER_TEST)
    return {
        "suite_native_s": native_wall,
        "suite_engine_s": engine_wall,
        "first_command_ms": statistics.median(first) * 1000,
        "later_commands_ms": statistics.median(later) * 1000,
        "cpu_caller_ms": caller * per_command,
        "cpu_background_ms": background * per_command,
        "cpu_preparer_ms": preparer * per_command,
        "cpu_children_ms": children * per_command,
    }


def _print_suite(suite: dict[str, float], tests: int) -> None:
    native, engine = suite["suite_native_s"], suite["suite_engine_s"]
    print(f"\n{tests} tests x {COMMANDS_PER_TEST} commands, locked (bwrap), one cleanroom per test")
    print(f"{'subprocess.run, whole suite':44s} {native:8.2f} s")
    print(f"{'Cleanroom.run, whole suite':44s} {engine:8.2f} s  ({engine / native:.1f}x)")
    print(f"{'Cleanroom.run, first command of a test':44s} {suite['first_command_ms']:8.2f} ms")
    print(f"{'Cleanroom.run, later commands of a test':44s} {suite['later_commands_ms']:8.2f} ms")
    print("CPU per command of the suite's Cleanroom.run (ms):")
    print(f"{'  the calling thread':44s} {suite['cpu_caller_ms']:8.2f}")
    print(f"{'  background threads (all)':44s} {suite['cpu_background_ms']:8.2f}")
    print(f"{'    of which the launcher preparer':44s} {suite['cpu_preparer_ms']:8.2f}")
    print(f"{'  launchers and commands (child processes)':44s} {suite['cpu_children_ms']:8.2f}")


#: Container backends measured when their engines answer (``Cleanroom(backend=...)``).
CONTAINER_BACKENDS = ("docker", "podman")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=200, help="runs per row (default 200)")
    parser.add_argument(
        "--suite-tests", type=int, default=200, help="tests in the suite row (default 200; 0: none)"
    )
    parser.add_argument(
        "--container-repeat", type=int, default=20, help="runs per container row (default 20)"
    )
    parser.add_argument("--json", action="store_true", help="print the medians as JSON")
    args = parser.parse_args()

    bwrap = shutil.which("bwrap")
    if bwrap is None:
        print("bench_engine: bwrap not on PATH (apt-get install bubblewrap)", file=sys.stderr)
        return 2
    try:
        get_backend("unshare", Policy.level("locked"))
        with_unshare = True
    except Exception as exc:
        print(f"bench_engine: no unshare row: {exc}", file=sys.stderr)
        with_unshare = False
    _reserve((SECCOMP_FD, HANDOFF_FD, PROGRAM_FD))
    scratch = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    rooms: list[Cleanroom] = []
    backends: list[NamespaceBackend] = []
    views: list[IdmappedView] = []
    try:
        locked = Policy.level("locked")
        spec = CommandSpec(
            argv=("true",),
            workspace=scratch / "argv",
            cwd="/workspace",
            env=build_environment(seed=1, allowlist=()),
            policy=locked,
            seed=1,
            timeout=None,
        )
        spec.workspace.mkdir()
        backend = BwrapBackend()
        # As the engine does: as root, the sandbox user sees the workspace through a view.
        as_user = backend.check_unprivileged_user(locked)
        workspace = spec.workspace
        if as_user:
            views.append(IdmappedView.create(spec.workspace))
            workspace = views[0].path
        ops = plan(locked, workspace)
        if as_user:  # the interpreter under /root, say, bound from a view nobody can reach
            ops = stage_unreachable(ops, views)
        engine_argv = [*as_user, *backend.sandbox_argv(spec, ops, None)]
        handoff = Handoff(backend.handoff(spec, ops, None))
        fd_files = {**backend.fd_files(locked), HANDOFF_FD: handoff.path}
        assert set(fd_files) <= {SECCOMP_FD, HANDOFF_FD, PROGRAM_FD}, (
            f"reserve {sorted(fd_files)} first"
        )
        engine_fds = _open_at(fd_files)

        bare = [bwrap, "--unshare-user", "--unshare-pid", "--ro-bind", "/", "/",
                "--proc", "/proc", "--dev", "/dev", "true"]  # fmt: skip
        rows: dict[str, Callable[[], object]] = {
            "true (native)": lambda: subprocess.run(["true"], capture_output=True, check=True),
            "bwrap, bare": lambda: _bwrap(bare, {}),
            "bwrap, engine's locked argv": lambda: _bwrap(
                engine_argv, {"env": dict(LAUNCHER_ENV), "pass_fds": _rewound(engine_fds)}
            ),
        }
        for policy in ("standard", "locked"):
            room = Cleanroom(scratch / policy, policy=policy, backend="bwrap", seed=1)
            rooms.append(room)
            rows[f"Cleanroom.run, {policy} (bwrap)"] = _engine_row(room)
        if with_unshare:
            room = Cleanroom(scratch / "unshare", policy="locked", backend="unshare", seed=1)
            rooms.append(room)
            rows["Cleanroom.run, locked (unshare)"] = _engine_row(room)
        cold: list[NamespaceBackend] = [BwrapBackend(warm=False)]
        if with_unshare:
            cold.append(UnshareBackend(warm=False))
        for cold_backend in cold:
            cold_backend.check(locked)
            backends.append(cold_backend)
            rows[f"cold start, locked ({cold_backend.name})"] = _backend_row(cold_backend, spec)
        containers = set()
        for engine in CONTAINER_BACKENDS if args.container_repeat > 0 else ():
            try:
                room = Cleanroom(scratch / engine, policy="locked", backend=engine, seed=1)
            except Exception as exc:
                print(f"bench_engine: no {engine} row: {exc}", file=sys.stderr)
                continue
            rooms.append(room)
            rows[f"Cleanroom.run, locked ({engine})"] = _engine_row(room)
            containers.add(f"Cleanroom.run, locked ({engine})")

        samples: dict[str, list[float]] = {name: [] for name in rows}
        cpu: dict[str, list[float]] = {name: [] for name in rows}
        for fn in rows.values():  # warm up caches (probes, host root listing, page cache)
            fn()
        for i in range(args.repeat):
            for name, fn in rows.items():
                if name in containers and i >= args.container_repeat:
                    continue
                wall, used = _timed(fn)
                samples[name].append(wall)
                cpu[name].append(used)
            if not args.json and (i + 1) % 50 == 0:
                print(f"  ... {i + 1}/{args.repeat} rounds", file=sys.stderr)
        if not args.json and args.suite_tests:
            print(f"  ... a suite of {args.suite_tests} tests", file=sys.stderr)
        suite = _suite(scratch, args.suite_tests) if args.suite_tests else {}
    finally:
        for room in rooms:
            room.close()
        for backend_used in backends:
            backend_used.close()
        for view in views:
            view.release()
        shutil.rmtree(scratch, ignore_errors=True)

    medians = {name: statistics.median(ts) * 1000 for name, ts in samples.items()}
    cpu_medians = {name: statistics.median(ts) * 1000 for name, ts in cpu.items()}
    load = os.getloadavg()[0]
    if args.json:
        report = {"repeat": args.repeat, "load_average_1m": load, "median_ms": medians,
                  "median_child_cpu_ms": cpu_medians, "suite": suite}  # fmt: skip
        print(json.dumps(report, indent=2))
        return 0
    bare, native = medians["bwrap, bare"], medians["true (native)"]
    print(
        f"\nmedian per command over {args.repeat} runs ({args.container_repeat} for containers)"
        f" (ms); 1-minute load average {load:.1f}"
    )
    print("(child cpu: CPU time of the processes waited for, which machine load barely moves)\n")
    heads = ("median", "p90", "engine adds", "over native", "child cpu")
    print(f"{'':36s} {heads[0]:>8s} {heads[1]:>8s} {heads[2]:>12s} {heads[3]:>12s} {heads[4]:>10s}")
    for name, ts in samples.items():
        p90 = statistics.quantiles(ts, n=10)[-1] * 1000
        engine = name.startswith(("Cleanroom", "cold"))
        added = f"{medians[name] - bare:+.2f}" if engine else ""
        over = f"{medians[name] - native:+.2f}" if name != "true (native)" else ""
        print(
            f"{name:36s} {medians[name]:8.2f} {p90:8.2f} {added:>12s} {over:>12s}"
            f" {cpu_medians[name]:10.2f}"
        )
    if suite:
        _print_suite(suite, args.suite_tests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
