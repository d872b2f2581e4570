"""``ggen lifecycle run PHASE --watch`` on a real project: real file changes, real processes.

Every wait is bounded by a limit and fails with the output so far; nothing asserts on time.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import run_doc_script

from .conftest import GGEN, ggen

pytestmark = pytest.mark.integration

LIMIT = 60.0


class Watching:
    """A ``run --watch`` process whose stdout lines are read as they come."""

    def __init__(self, root: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*GGEN, "-C", str(root), "run", *args, "--watch"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next_line(self, prefix: str) -> str:
        """The next line starting with ``prefix`` (fails after :data:`LIMIT` or at exit)."""
        deadline = time.monotonic() + LIMIT
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.proc.kill()
                pytest.fail(f"no line starting {prefix!r}; output:\n" + "\n".join(self.seen))
            if line is None:
                pytest.fail(f"ggen exited before {prefix!r}; output:\n" + "\n".join(self.seen))
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=LIMIT)
        while (line := self.lines.get(timeout=LIMIT)) is not None:
            self.seen.append(line)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


Start = Callable[..., Watching]


@pytest.fixture
def watching() -> Iterator[Start]:
    started: list[Watching] = []

    def start(root: Path, *args: str) -> Watching:
        started.append(Watching(root, *args))
        return started[-1]

    yield start
    for item in started:
        item.close()


def project(root: Path, toml: str, files: dict[str, str]) -> Path:
    (root / "make.toml").write_text(textwrap.dedent(toml))
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


BUILD = """\
    [project]
    name = "w"

    [lifecycle.build]
    command = "cat src/*.txt > src/gen.out; echo built $(cat src/*.txt | tr -d '\\\\n')"
    inputs = ["src/**"]
    outputs = ["src/gen.out"]
"""


def test_a_change_runs_the_phase_again_naming_the_files(tmp_path: Path, watching: Start) -> None:
    root = project(tmp_path, BUILD, {"src/a.txt": "a\n"})
    run = watching(root, "build", "--debounce", "1")
    assert run.next_line("build | built") == "build | built a"
    assert "waiting for changes to 1 file(s)" in run.next_line("watch: waiting")
    # The build's own output (src/gen.out, a declared output) is not watched: the next change
    # reported is the edit below, alone.
    (root / "src" / "a.txt").write_text("A\n")
    assert run.next_line("watch: changed") == "watch: changed: src/a.txt; running build again"
    assert run.next_line("build | built") == "build | built A"
    run.next_line("watch: waiting")
    # Two files written together: one run (debounced), both named.
    (root / "src" / "b.txt").write_text("b\n")
    (root / "src" / "c.txt").write_text("c\n")
    changed = run.next_line("watch: changed")
    assert changed == "watch: changed: src/b.txt, src/c.txt; running build again"
    assert run.next_line("build | built") == "build | built Abc"
    run.next_line("watch: waiting")
    # A removed file is a change too.
    (root / "src" / "c.txt").unlink()
    assert run.next_line("watch: changed") == "watch: changed: src/c.txt; running build again"
    assert run.next_line("build | built") == "build | built Ab"
    run.next_line("watch: waiting")
    assert run.interrupt() == 130
    assert run.seen[-1] == "watch: stopped"
    assert not any("Traceback" in line for line in run.seen)


SERVER = """\
    [project]
    name = "dev"

    [lifecycle.serve]
    command = "{python} server.py"
    watch = ["app/*.py"]
    port = {port}
"""

SERVER_PY = """\
import os, pathlib, sys, time
pathlib.Path("pids").open("a").write(f"{os.getpid()}\\n")
print("serving", pathlib.Path("app/main.py").read_text().strip(), flush=True)
while True:
    time.sleep(1)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _gone(pid: int) -> bool:
    """Whether ``pid`` no longer runs (waits up to LIMIT for it to end)."""
    deadline = time.monotonic() + LIMIT
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def test_a_dev_server_is_restarted_on_change_and_ctrl_c_ends_it(
    tmp_path: Path, watching: Start
) -> None:
    toml = SERVER.format(python=sys.executable, port=_free_port())
    root = project(tmp_path, toml, {"server.py": SERVER_PY, "app/main.py": "v1\n"})
    run = watching(root, "serve")
    assert run.next_line("serve | serving") == "serve | serving v1"
    (root / "app" / "main.py").write_text("v2\n")
    changed = run.next_line("watch: changed")
    assert changed == "watch: changed: app/main.py; stopping the run, running serve again"
    assert run.next_line("serve | serving") == "serve | serving v2"
    first, second = (int(p) for p in (root / "pids").read_text().split())
    assert _gone(first), "the first server still runs after the restart"
    assert run.interrupt() == 130
    assert run.seen[-1] == "watch: stopped"
    assert _gone(second), "the server still runs after Ctrl-C"
    assert not any("Traceback" in line for line in run.seen)


def test_sigterm_stops_watching_like_ctrl_c(tmp_path: Path, watching: Start) -> None:
    root = project(tmp_path, BUILD, {"src/a.txt": "a\n"})
    run = watching(root, "build")
    run.next_line("watch: waiting")
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(timeout=LIMIT) == 130


def test_a_phase_without_watch_globs_or_inputs_is_one_clear_error(tmp_path: Path) -> None:
    root = project(tmp_path, '[project]\nname = "x"\n\n[lifecycle.build]\ncommand = "true"\n', {})
    done = ggen(root, "run", "build", "--watch")
    assert done.returncode == 2
    assert "--watch: no task of build watches files" in done.stderr
    assert 'watch = ["src/**"]' in done.stderr


def test_watch_does_not_go_with_json(tmp_path: Path) -> None:
    root = project(tmp_path, BUILD, {"src/a.txt": "a\n"})
    done = ggen(root, "run", "build", "--watch", "--json")
    assert done.returncode == 2
    assert "does not go with --dry-run or --json" in done.stderr


def test_list_shows_watch_globs(tmp_path: Path) -> None:
    toml = SERVER.format(python=sys.executable, port=8123)
    root = project(tmp_path, toml, {})
    done = ggen(root, "list")
    assert "(watch, port 8123)" in done.stdout
    assert os.path.exists(root / "make.toml")


def test_the_docs_watch_example_runs_as_written(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[3] / "docs" / "lifecycle.md").read_text()
    section = text[text.index("## Watching: `run PHASE --watch`") :]
    script, shown = re.findall(r"^```\w*\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)[:2]
    done = run_doc_script(script, tmp_path, timeout=LIMIT * 2)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == shown
