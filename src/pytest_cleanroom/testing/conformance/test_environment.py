"""A command's environment never reaches the host-side launchers, nor host command lines.

``env=`` of ``run()`` (and a scenario file's ``env``) is applied inside the sandbox only: the
launchers that run in the host's namespaces (``/bin/sh``, ``setpriv``, ``unshare``, ``bwrap``)
run with a fixed environment, so ``LD_PRELOAD`` there cannot run code as the engine's user
outside every namespace. The values are handed over through a file descriptor, never on a
command line that every local user can read in ``/proc/PID/cmdline``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy, RunResult
from pytest_cleanroom.policy_levels import LEVELS
from pytest_cleanroom.testing import require

# Appends the mount namespace of every process that loads it to MARKER: a line equal to the
# host's own namespace means code ran outside the sandbox. No libc headers needed.
PRELOAD_SOURCE = r"""
extern int open(const char *, int, ...);
extern long write(int, const void *, unsigned long);
extern long readlink(const char *, char *, unsigned long);
extern int close(int);
__attribute__((constructor)) static void mark(void) {
    char ns[128];
    long n = readlink("/proc/self/ns/mnt", ns, sizeof ns - 1);
    if (n < 0) n = 0;
    ns[n++] = '\n';
    int fd = open(MARKER, 02101, 0644); /* O_WRONLY | O_CREAT | O_APPEND */
    if (fd >= 0) { write(fd, ns, n); close(fd); }
}
"""


def host_mount_namespace() -> str:
    return os.readlink("/proc/self/ns/mnt")


@pytest.fixture(scope="module")
def preload(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a real LD_PRELOAD library, the marker file it appends to); checked to work on the host."""
    gcc = shutil.which("gcc")
    require(
        gcc is not None, "gcc not on PATH (apt-get install gcc): it builds the LD_PRELOAD probe"
    )
    assert gcc is not None
    work = tmp_path_factory.mktemp("preload")
    marker = work / "loaded-in"
    source = work / "mark.c"
    source.write_text(PRELOAD_SOURCE)
    library = work / "mark.so"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-nostdlib", f'-DMARKER="{marker}"', "-o", library, source],
        check=True,
    )
    subprocess.run(["/bin/true"], env={"LD_PRELOAD": str(library)}, check=True)
    assert marker.read_text().splitlines() == [host_mount_namespace()], "the probe is broken"
    marker.unlink()
    return library, marker


def host_loads(marker: Path) -> list[str]:
    """The lines of ``marker`` written by a process in the host's mount namespace."""
    if not marker.exists():
        return []
    return [line for line in marker.read_text().splitlines() if line == host_mount_namespace()]


@pytest.mark.parametrize("level", LEVELS)
def test_ld_preload_in_env_runs_nothing_on_the_host(
    tmp_path: Path, conformance_backend: str, level: str, preload: tuple[Path, Path]
) -> None:
    library, marker = preload
    marker.unlink(missing_ok=True)
    env = {"LD_PRELOAD": str(library)}
    with Cleanroom(tmp_path / "ws", policy=level, backend=conformance_backend) as room:
        result = room.run(["/bin/sh", "-c", "echo ran"], env=env)
    assert result.stdout == "ran\n", result.describe()
    assert host_loads(marker) == [], (
        f"LD_PRELOAD ran on the host under {level} on {conformance_backend}"
    )


def test_a_data_only_scenario_file_cannot_preload_on_the_host(
    tmp_path: Path, conformance_backend: str, preload: tuple[Path, Path]
) -> None:
    library, marker = preload
    marker.unlink(missing_ok=True)
    project = tmp_path / "project"
    project.mkdir()
    (project / "preload.scenario.toml").write_text(
        f'[scenario]\nenv = {{ LD_PRELOAD = "{library}" }}\n\n'
        '[[steps]]\nname = "step"\nrun = "echo step ran"\nexpect_stdout = "step ran"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"--cleanroom-backend={conformance_backend}"],
        cwd=project, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout, done.stdout
    assert host_loads(marker) == [], (
        f"a scenario file's env ran code on the host on {conformance_backend}"
    )


@pytest.mark.parametrize("level", ["standard", "locked"])
def test_env_values_are_not_on_any_host_command_line(
    tmp_path: Path, conformance_backend: str, level: str
) -> None:
    secret = f"cleanroom-secret-{uuid.uuid4().hex}"
    policy = Policy.level(level)
    script = (
        "touch started; i=0; while [ ! -e release ] && [ $i -lt 600 ]; do sleep 0.05; "
        'i=$((i+1)); done; printf %s "$SECRET_TOKEN"'
    )
    with Cleanroom(tmp_path / "ws", policy=policy, backend=conformance_backend) as room:
        outcome: list[object] = []
        runner = threading.Thread(
            target=lambda: outcome.append(room.run(script, env={"SECRET_TOKEN": secret}))
        )
        runner.start()
        try:
            deadline = time.monotonic() + 60
            while not (room.workspace.root / "started").exists():
                assert time.monotonic() < deadline, "the command never started"
                time.sleep(0.02)
            seen = command_lines_containing(secret.encode())
        finally:
            (room.workspace.root / "release").touch()
            runner.join()
    result = outcome[0]
    assert getattr(result, "stdout", None) == secret, result
    assert seen == [], f"the env value is on host command lines: {seen}"


def command_lines_containing(needle: bytes) -> list[str]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                line = f.read()
        except OSError:
            continue
        if needle in line:
            shown = line.replace(b"\0", b" ")[:300]
            found.append(f"{entry.name}: {shown!r}")
    return found


def open_descriptors(result: RunResult) -> dict[str, str]:
    """``{fd: target}`` from ``ls -l /proc/self/fd`` run in the sandbox, less ``ls``'s own."""
    found = {}
    for line in result.stdout.splitlines():
        name, _, target = line.partition(" -> ")
        fd = name.rsplit(" ", 1)[-1]
        if fd.isdigit() and not target.endswith("/fd"):
            found[fd] = target
    return found


@pytest.mark.parametrize("level", LEVELS)
def test_a_command_inherits_no_descriptor_of_the_engine(
    tmp_path: Path, conformance_backend: str, level: str
) -> None:
    """Only stdin, stdout and stderr reach a command, however many commands ran before it and
    whatever the engine's process holds open (here an inheritable pipe, as a careless library
    would leave one)."""
    read_end, write_end = os.pipe()
    os.set_inheritable(read_end, True)
    os.set_inheritable(write_end, True)
    try:
        with Cleanroom(tmp_path / "ws", policy=level, backend=conformance_backend) as room:
            seen = [open_descriptors(room.run(["ls", "-l", "/proc/self/fd"])) for _ in range(3)]
    finally:
        os.close(read_end)
        os.close(write_end)
    for number, descriptors in enumerate(seen, 1):
        assert sorted(descriptors) == ["0", "1", "2"], (
            f"command {number} under {level} on {conformance_backend} inherited {descriptors}"
        )
