"""The real ``turborepo-remote-cache`` server (npm), started on 127.0.0.1 with local storage.

``scripts/turbo-tools.sh server`` installs it once per machine (``scripts/setup.sh`` does so);
tests and the benchmark start one server each on a free port.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_cleanroom.services.spawn import free_port

ROOT = Path(__file__).resolve().parents[3]
#: The server stores the x-artifact-tag of an upload only when it has a key of its own (it never
#: checks tags: clients do). Any value does; this one is not the clients' key.
SERVER_SIDE_KEY = "server-stores-tags"


def _tool(what: str) -> Path | None:
    """``scripts/turbo-tools.sh WHAT``: the path it prints (installing once), or ``None``."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "turbo-tools.sh"), what],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    path = Path(done.stdout.strip()) if done.returncode == 0 else None
    return path if path is not None and path.is_file() else None


def server_cli() -> Path | None:
    """The installed server's ``cli.js`` (installing it if npm can), or ``None``."""
    if shutil.which("npm") is None:
        return None
    return _tool("server")


def node_binary() -> Path | None:
    """A Node.js the server runs on (20 or later; installed from the npm registry if needed)."""
    return _tool("node")


@dataclass
class TurboServer:
    """A running server: its URL, token, storage directory and process."""

    url: str
    token: str
    storage: Path
    process: subprocess.Popen[bytes]
    log: Path

    def artifact_path(self, team: str, key: str) -> Path:
        return self.storage / team / key

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _answers(port: int, token: str) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request(
            "GET", "/v8/artifacts/status", headers={"Authorization": f"Bearer {token}"}
        )
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def start_server(
    cli: Path, directory: Path, token: str = "test-token", *, store_tags: bool = True
) -> TurboServer:
    """Start the server with its storage under ``directory``; wait until it answers. Without
    ``store_tags`` it drops the ``x-artifact-tag`` of uploads and serves artifacts unsigned."""
    storage = directory / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "NODE_ENV": "production",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "TURBO_TOKEN": token,
        "STORAGE_PROVIDER": "local",
        "STORAGE_PATH": str(storage),
        "STORAGE_PATH_USE_TMP_FOLDER": "false",
        "LOG_LEVEL": "warn",
    }
    if store_tags:
        env["TURBO_REMOTE_CACHE_SIGNATURE_KEY"] = SERVER_SIDE_KEY
    log = directory / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(node_binary() or "node"), str(cli)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=directory,
        )
    deadline = time.monotonic() + 60
    while not _answers(port, token):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError(f"turborepo-remote-cache did not start:\n{log.read_text()}")
        time.sleep(0.1)
    return TurboServer(f"http://127.0.0.1:{port}", token, storage, process, log)
