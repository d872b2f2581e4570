"""Real registries for the market tests: an HTTP server on 127.0.0.1 and git repositories."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ggen_market.cli import market, template
from tests.conftest import require_binary

REPO = Path(__file__).resolve().parents[3]


def write_gpack(
    root: Path,
    pack_id: str,
    version: str,
    *,
    deps: dict[str, str] | None = None,
    files: dict[str, str | bytes] | None = None,
    extra: str = "",
    compat: str = "*",
) -> Path:
    """Write a small gpack directory ``root/<id>-<version>`` and return it."""
    path = root / f"{pack_id}-{version}"
    path.mkdir(parents=True)
    dep_lines = "".join(f'"{d}" = "{r}"\n' for d, r in (deps or {}).items())
    (path / "gpack.toml").write_text(
        f'[gpack]\nid = "{pack_id}"\nname = "{pack_id.rsplit(".", 1)[-1]}"\n'
        f'version = "{version}"\ndescription = "test pack {pack_id}"\n'
        f'ggen_compat = "{compat}"\ntags = ["test"]\n\n[dependencies]\n{dep_lines}\n{extra}'
    )
    for rel, content in (files or {}).items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    return path


def tree_state(*paths: Path) -> str:
    """Digest of everything at ``paths``: names, types, modes, link targets and contents."""
    digest = hashlib.sha256()
    for base in paths:
        if not base.exists() and not base.is_symlink():
            digest.update(f"absent {base}\n".encode())
            continue
        if base.is_file():
            digest.update(f"file {base} {base.stat().st_mode:o}\n".encode() + base.read_bytes())
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                p = Path(dirpath) / name
                st = p.lstat()
                line = f"{p.relative_to(base)} {st.st_mode:o}"
                if p.is_symlink():
                    line += f" -> {os.readlink(p)}"
                digest.update(line.encode() + b"\n")
                if p.is_file() and not p.is_symlink():
                    digest.update(p.read_bytes())
    return digest.hexdigest()


@dataclass
class ServerControl:
    """How the test HTTP server behaves; tests flip these while it runs."""

    root: Path
    delay: float = 0.0
    status: int | None = None
    requests: list[tuple[str, int]] = field(default_factory=list)
    overrides: dict[str, bytes] = field(default_factory=dict)
    #: A path suffix: the first request for it closes the listening socket and drops the
    #: connection unanswered, so the server goes down in the middle of a command.
    go_down_on: str | None = None
    server: http.server.ThreadingHTTPServer | None = None


class _Handler(http.server.BaseHTTPRequestHandler):
    control: ServerControl

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        control = self.control
        if control.delay:
            time.sleep(control.delay)
        path = self.path.split("?")[0].lstrip("/")
        if control.go_down_on and path.endswith(control.go_down_on) and control.server:
            control.requests.append((self.path, 0))
            server, control.go_down_on = control.server, None
            threading.Thread(target=_go_down, args=(server,), daemon=True).start()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)  # this request is never answered
            return
        if control.status is not None:
            self._send(control.status, b"server error")
            return
        body = control.overrides.get(path)
        if body is None:
            file = (control.root / path).resolve()
            if not file.is_relative_to(control.root.resolve()) or not file.is_file():
                self._send(404, b"not found")
                return
            body = file.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        if self.headers.get("If-None-Match") == etag:
            self._send(304, b"", etag=etag)
            return
        self._send(200, body, etag=etag)

    def _send(self, status: int, body: bytes, etag: str | None = None) -> None:
        self.control.requests.append((self.path, status))
        try:
            self.send_response(status)
            if etag:
                self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status != 304:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)


def _go_down(server: http.server.ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()  # connections are refused from now on


@dataclass
class HttpRegistry:
    url: str
    control: ServerControl
    server: http.server.ThreadingHTTPServer

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_registry(tmp_path: Path) -> Iterator[HttpRegistry]:
    """An HTTP server on 127.0.0.1 (free port) serving ``tmp_path/served`` with ETags."""
    root = tmp_path / "served"
    root.mkdir()
    control = ServerControl(root=root)
    handler = type("Handler", (_Handler,), {"control": control})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    control.server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    registry = HttpRegistry(f"http://127.0.0.1:{server.server_address[1]}/", control, server)
    yield registry
    control.delay = 0
    with contextlib.suppress(OSError):
        registry.stop()


def git(*args: str, cwd: Path) -> str:
    """Run git with a fixed identity; return stdout."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(cwd),
    }
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """An empty git repository (branch main) to publish a registry in."""
    require_binary("git", "apt-get install git")
    repo = tmp_path / "registry.git-src"
    repo.mkdir()
    git("init", "--quiet", "--initial-branch=main", cwd=repo)
    return repo


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A private cache and config for ggen, and no registry from the outer environment."""
    cache = tmp_path / "cache"
    values = {
        "GGEN_CACHE_DIR": str(cache),
        "GGEN_CONFIG": str(tmp_path / "no-user-config.toml"),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GGEN_REGISTRY_URL", raising=False)
    monkeypatch.delenv("GGEN_HTTP_TIMEOUT", raising=False)
    return values


def ggen(*args: str) -> Result:
    """``ggen market ...`` / ``ggen template ...`` in process, through click's test runner."""
    group = {"market": market, "template": template}[args[0]]
    return CliRunner().invoke(group, list(args[1:]), catch_exceptions=False)


@pytest.fixture
def project(tmp_path: Path, env: dict[str, str]) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path


def copy_examples(dest: Path) -> Path:
    shutil.copytree(REPO / "example_gpacks", dest)
    return dest
