"""Registries: where indexes and archives come from.

* :class:`LocalRegistry` — a directory (or ``file://`` URL) holding ``index.json`` and archives,
  or simply gpack directories, indexed on the fly into the cache;
* :class:`HttpRegistry` — ``http(s)://`` through httpx, with timeouts, retries and an ETag-aware
  cache of the index, so that search still answers when the server is down;
* :class:`GitRegistry` — ``git+URL#REF``: a repository cloned with the ``git`` command at a ref,
  then read like a local registry. The lock records the exact commit.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urljoin, urlparse

from pytest_cleanroom.safe_write import write_output

from .download import ACCEPT_ENCODING, TransferLimits, archive_bytes, body_chunks, read_body
from .download import within_deadline as _within_deadline
from .errors import RegistryError, RegistryIndexError
from .fsutil import exclusive_lock
from .index import INDEX_NAME, Index, parse_index
from .progress import Progress

if TYPE_CHECKING:
    import httpx

EMBEDDED = "embedded:"
DEFAULT_TIMEOUT = 10.0


class Registry(ABC):
    """One source of gpacks: an index and the archives it points to."""

    #: The registry's address as configured (shown to users, recorded in ggen.lock).
    url: str

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self._index: Index | None = None

    @property
    def source(self) -> str:
        """What ggen.lock records so the same archive can be fetched again."""
        return self.url

    def index(self) -> Index:
        """The registry's index (loaded once per instance)."""
        if self._index is None:
            self._index = self._load_index()
        return self._index

    @abstractmethod
    def _load_index(self) -> Index: ...

    @abstractmethod
    def fetch(self, location: str, dest: Path, *, size: int | None, progress: Progress) -> str:
        """Copy the archive at ``location`` (from the index) to ``dest``; returns its sha256."""


def _copy_hashing(src: Any, dest: Path, *, label: str, size: int | None, progress: Progress) -> str:
    digest = hashlib.sha256()
    written = 0
    limit = archive_bytes()
    progress.start(label, size)
    with dest.open("xb") as out:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            written += len(chunk)
            if written > limit:
                raise RegistryError(
                    f"{label}: larger than {limit} bytes; refused"
                    " (GGEN_MAX_ARCHIVE_BYTES raises it)"
                )
            digest.update(chunk)
            out.write(chunk)
            progress.advance(len(chunk))
    progress.finish()
    return digest.hexdigest()


class LocalRegistry(Registry):
    """A directory with ``index.json``, or a folder of gpacks indexed on the fly."""

    def __init__(self, path: Path, *, cache: Path, url: str | None = None) -> None:
        super().__init__()
        self.path = path
        self.cache = cache
        self.url = url if url else (path.as_uri() if path.is_absolute() else str(path))
        self._base = path

    def _load_index(self) -> Index:
        index_path = self.path / INDEX_NAME
        if index_path.is_file():
            return parse_index(index_path.read_bytes(), str(index_path), cache=self.cache)
        if not self.path.is_dir():
            raise RegistryError(f"registry {self.url}: {self.path} is not a directory")
        from .builder import source_index

        index, self._base = source_index(self.path, self.cache)
        if not index.packs:
            raise RegistryError(
                f"registry {self.url}: {self.path} has no {INDEX_NAME} and no gpacks"
                " (build one with `ggen market index DIR`)"
            )
        return index

    def fetch(self, location: str, dest: Path, *, size: int | None, progress: Progress) -> str:
        self.index()
        rel = PurePosixPath(location)
        if rel.is_absolute() or ".." in rel.parts or "://" in location:
            raise RegistryIndexError(
                f"registry {self.url}: archive location {location!r} must be a path inside it"
            )
        path = self._base / rel
        if not path.is_file():
            raise RegistryError(
                f"registry {self.url}: the index points to a missing archive {location!r}"
                f" ({path} does not exist)"
            )
        with path.open("rb") as src:
            return _copy_hashing(src, dest, label=location, size=size, progress=progress)


class HttpRegistry(Registry):
    """An index and archives served over HTTP(S), with a local ETag cache of the index."""

    def __init__(
        self, url: str, *, cache: Path, timeout: float = DEFAULT_TIMEOUT, offline: bool = False
    ) -> None:
        super().__init__()
        self.url = url
        self.index_url = url if url.endswith(".json") else url.rstrip("/") + "/" + INDEX_NAME
        self.timeout = timeout
        self.offline = offline
        key = hashlib.sha256(self.index_url.encode()).hexdigest()[:24]
        self.cache_dir = cache / "http" / key
        self.cache_root = cache

    def _client(self) -> httpx.Client:
        import httpx

        transport = httpx.HTTPTransport(retries=2)
        return httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=True,
            headers={"User-Agent": "ggen-market", "Accept-Encoding": ACCEPT_ENCODING},
        )

    def _cached(self) -> tuple[bytes, dict[str, Any]] | None:
        try:
            body = (self.cache_dir / INDEX_NAME).read_bytes()
            meta = json.loads((self.cache_dir / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return None
        meta = meta if isinstance(meta, dict) else {}
        if _usable_etag(meta.get("etag")) is None:
            meta.pop("etag", None)
        return body, meta

    def _load_index(self) -> Index:
        import httpx

        cached = self._cached()
        if self.offline:
            if cached is None:
                raise RegistryError(f"registry {self.url}: offline, and its index was never cached")
            return parse_index(cached[0], f"{self.index_url} (cached)", cache=self.cache_root)
        headers = {}
        if cached is not None and cached[1].get("etag"):
            headers["If-None-Match"] = str(cached[1]["etag"])
        try:
            status, body, etag = self._get_index(headers)
            if status == 304 and cached is not None:
                return parse_index(cached[0], f"{self.index_url} (cached)", cache=self.cache_root)
            if status != 200:
                raise RegistryError(f"registry {self.url}: HTTP {status}")
            index = parse_index(body, self.index_url, cache=self.cache_root)
        except (httpx.HTTPError, RegistryError, RegistryIndexError) as exc:
            problem = _describe_http_error(exc, self.index_url, self.timeout)
            if cached is None:
                kind = RegistryIndexError if isinstance(exc, RegistryIndexError) else RegistryError
                raise kind(f"{problem}; no cached copy of this index") from None
            when = cached[1].get("fetched", "an earlier run")
            self.warnings.append(f"{problem}; using the index cached at {when}")
            return parse_index(cached[0], f"{self.index_url} (cached)", cache=self.cache_root)
        self._store(body, etag)
        return index

    def _get_index(self, headers: dict[str, str]) -> tuple[int, bytes, str | None]:
        """GET the index within the transfer limits: ``(status, body, usable ETag)``.

        A 5xx answer is retried twice with a short pause, all within the one deadline.
        """
        limits = TransferLimits.for_index()
        what = f"registry {self.url}: index {self.index_url}"

        def get(cancelled: threading.Event) -> tuple[int, bytes, str | None]:
            with self._client() as client:
                for pause in (0.2, 0.5, None):
                    with client.stream("GET", self.index_url, headers=headers) as response:
                        status = response.status_code
                        if status < 500 or pause is None:
                            body = read_body(response, limits, what, cancelled)
                            return status, body, _usable_etag(response.headers.get("etag"))
                    if cancelled.wait(pause):
                        break
            raise RegistryError(f"{what}: cancelled (past its deadline)")

        return _within_deadline(get, limits, what)

    def _store(self, body: bytes, etag: str | None) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        write_output(self.cache_dir / INDEX_NAME, body)
        meta = {
            "url": self.index_url,
            "etag": etag,
            "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_output(self.cache_dir / "meta.json", json.dumps(meta, indent=2) + "\n")

    def fetch(self, location: str, dest: Path, *, size: int | None, progress: Progress) -> str:
        import httpx

        url = urljoin(self.index_url, location)
        if urlparse(url).scheme not in ("http", "https"):
            raise RegistryIndexError(
                f"registry {self.url}: archive location {location!r} is not an http(s) URL"
            )
        limits = TransferLimits.for_archive()

        def get(cancelled: threading.Event) -> str:
            with self._client() as client, client.stream("GET", url) as response:
                if response.status_code == 404:
                    raise RegistryError(
                        f"registry {self.url}: the index points to a missing archive {url} (404)"
                    )
                if response.status_code != 200:
                    raise RegistryError(f"{url}: HTTP {response.status_code}")
                length = response.headers.get("content-length", "")
                total = int(length) if length.isdigit() and len(length) < 20 else size
                return _copy_hashing(
                    _StreamReader(body_chunks(response, limits, url, cancelled)),
                    dest,
                    label=url.rsplit("/", 1)[-1],
                    size=total,
                    progress=progress,
                )

        try:
            return _within_deadline(get, limits, f"registry {self.url}: archive {url}")
        except httpx.HTTPError as exc:
            raise RegistryError(_describe_http_error(exc, url, self.timeout)) from None


class _StreamReader:
    """``read()`` over an iterator of byte chunks."""

    def __init__(self, chunks: Any) -> None:
        self._chunks = iter(chunks)

    def read(self, _size: int) -> bytes:
        return next(self._chunks, b"")


def _usable_etag(value: object) -> str | None:
    """An ETag that can be sent back in ``If-None-Match``: printable ASCII, of a sane length
    (a server's non-ASCII ETag is dropped rather than kept to break every later request)."""
    if not isinstance(value, str) or not 0 < len(value) <= 512:
        return None
    return value if all(" " <= ch <= "~" for ch in value) else None


def _describe_http_error(exc: Exception, url: str, timeout: float) -> str:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return f"registry {url}: no answer within {timeout:g} s (timed out)"
    if isinstance(exc, httpx.HTTPError):
        return f"registry {url}: unreachable ({type(exc).__name__}: {exc})"
    return str(exc)


class GitRegistry(Registry):
    """A git repository (``git+URL#REF``) holding a registry, cloned with the ``git`` command."""

    def __init__(self, spec: str, *, cache: Path, offline: bool = False) -> None:
        super().__init__()
        self.url = spec
        self.repo_url, self.ref = parse_git_spec(spec)
        self.cache = cache
        self.offline = offline
        key = hashlib.sha256(self.repo_url.encode()).hexdigest()[:24]
        self.checkout = cache / "git" / key
        self.commit = ""
        self._local: LocalRegistry | None = None

    @property
    def source(self) -> str:
        return f"git+{self.repo_url}#{self.commit}" if self.commit else self.url

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        import shutil
        import subprocess

        git = shutil.which("git")
        if git is None:
            raise RegistryError(f"registry {self.url}: the `git` command is not installed")
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
        base = [git, "-c", "protocol.ext.allow=never", "-c", "advice.detachedHead=false"]
        result = subprocess.run(
            [*base, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RegistryError(
                f"registry {self.url}: git {args[0]} failed:"
                f" {result.stderr.strip() or result.stdout.strip()}"
            )
        return result.stdout.strip()

    def _sync(self) -> None:
        import shutil
        import tempfile

        self.checkout.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(Path(f"{self.checkout}.lock")):
            if not (self.checkout / ".git").is_dir():
                if self.offline:
                    raise RegistryError(f"registry {self.url}: offline, and never cloned")
                tmp = Path(tempfile.mkdtemp(prefix=".clone-", dir=self.checkout.parent))
                try:
                    self._git("clone", "--quiet", "--no-checkout", "--", self.repo_url, str(tmp))
                    os.replace(tmp, self.checkout)
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
            elif not self.offline:
                try:
                    self._git(
                        "fetch", "--quiet", "--force", "--tags", "origin",
                        "+refs/heads/*:refs/remotes/origin/*", cwd=self.checkout,
                    )  # fmt: skip
                except RegistryError as exc:
                    self.warnings.append(f"{exc}; using the clone made earlier")
            self.commit = self._resolve_ref()
            self._git("checkout", "--quiet", "--force", "--detach", self.commit, cwd=self.checkout)
            self._git("clean", "--quiet", "-d", "--force", "-x", cwd=self.checkout)

    def _resolve_ref(self) -> str:
        names = [f"origin/{self.ref}", self.ref] if self.ref != "HEAD" else ["origin/HEAD", "HEAD"]
        for name in names:
            try:
                return self._git("rev-parse", "--verify", "--quiet", f"{name}^{{commit}}",
                                 cwd=self.checkout)  # fmt: skip
            except RegistryError:
                continue
        raise RegistryError(f"registry {self.url}: no branch, tag or commit named {self.ref!r}")

    def _registry(self) -> LocalRegistry:
        if self._local is None:
            self._sync()
            self._local = LocalRegistry(self.checkout, cache=self.cache, url=self.url)
        return self._local

    def _load_index(self) -> Index:
        return self._registry().index()

    def fetch(self, location: str, dest: Path, *, size: int | None, progress: Progress) -> str:
        return self._registry().fetch(location, dest, size=size, progress=progress)


def parse_git_spec(spec: str) -> tuple[str, str]:
    """``git+URL#REF`` -> (URL, REF); REF defaults to the remote's default branch (``HEAD``)."""
    if not spec.startswith("git+"):
        raise RegistryError(f"{spec!r}: a git registry is written git+URL#REF")
    url, _, ref = spec[4:].partition("#")
    if not url or url.startswith("-") or url.startswith("ext::"):
        raise RegistryError(f"{spec!r}: not a usable git URL")
    return url, ref or "HEAD"


def open_registry(
    url: str,
    *,
    cache: Path,
    timeout: float = DEFAULT_TIMEOUT,
    offline: bool = False,
    embedded: Path | None = None,
) -> Registry:
    """The registry for ``url``: a path, ``file://``, ``http(s)://``, ``git+URL``, ``embedded:``."""
    if url == EMBEDDED:
        if embedded is None:
            raise RegistryError("the embedded example registry is missing from this installation")
        return LocalRegistry(embedded, cache=cache, url=EMBEDDED)
    if url.startswith("git+"):
        return GitRegistry(url, cache=cache, offline=offline)
    scheme = urlparse(url).scheme
    if scheme in ("http", "https"):
        return HttpRegistry(url, cache=cache, timeout=timeout, offline=offline)
    if scheme == "file":
        parsed = urlparse(url)
        return LocalRegistry(Path(unquote(parsed.path)), cache=cache, url=url)
    if scheme and len(scheme) > 1:
        raise RegistryError(
            f"registry {url!r}: unsupported scheme {scheme!r} (use a path, file://, http://,"
            " https:// or git+URL#REF)"
        )
    path = Path(url).expanduser().resolve()
    return LocalRegistry(path, cache=cache, url=path.as_uri())
