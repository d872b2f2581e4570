"""The shared base of what every kind's fixtures hand to tests: a server's log, its JSON form,
and a per-test handle that closes what it handed out."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar


@dataclass(frozen=True)
class LogSource:
    """Where a server writes its log: a file (process), a container (docker, podman) or nowhere."""

    kind: str = "none"
    path: str | None = None
    container_id: str | None = None
    docker_host: str | None = None

    def mark(self) -> float:
        """A position to read from later: a byte offset (file) or a timestamp (container)."""
        if self.kind == "file" and self.path:
            try:
                return float(Path(self.path).stat().st_size)
            except OSError:
                return 0.0
        return time.time()

    def read(
        self,
        since: float | None = None,
        max_lines: int = 60,
        keep: Callable[[str], str] | None = None,
    ) -> str:
        """The last ``max_lines`` lines, only those written after ``since`` if given, of those
        that ``keep`` (a filter of the whole text) keeps."""
        text = ""
        if self.kind == "file" and self.path:
            try:
                with open(self.path, "rb") as fh:
                    if since is not None:
                        fh.seek(int(since))
                    else:
                        with contextlib.suppress(OSError):
                            fh.seek(-64 * 1024, 2)
                    text = fh.read().decode(errors="replace")
            except OSError:
                return ""
        elif self.kind == "container" and self.container_id:
            from .container_provider import container_logs

            text = container_logs(self, since=since, max_lines=None if keep else max_lines)
        if keep is not None:
            text = keep(text)
        lines = text.splitlines()
        return "\n".join(lines[-max_lines:])


class _Server:
    """What both servers share: where they listen, their log, their JSON form (the run's state
    file hands it to every xdist worker). Subclasses are frozen dataclasses."""

    __dataclass_fields__: ClassVar[dict[str, Any]]
    host: str
    port: int
    password: str | None
    version: str
    log: LogSource

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the server's log ("" when the provider has none, e.g. external)."""
        return self.log.read(max_lines=lines)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls: type[ServerT], data: dict[str, Any]) -> ServerT:
        fields = dict(data)
        fields["log"] = LogSource(**fields.get("log", {}))
        return cls(**fields)


ServerT = TypeVar("ServerT", bound=_Server)


class _Closable(Protocol):
    def close(self) -> None: ...


ClosableT = TypeVar("ClosableT", bound=_Closable)


class _TestHandle(Generic[ServerT, ClosableT]):
    """What both per-test handles share: the server's address, and the connections or clients
    handed to the test, closed for it at teardown."""

    def __init__(self, server: ServerT) -> None:
        self.server = server
        self._handed_out: list[ClosableT] = []

    @property
    def host(self) -> str:
        """TCP host (127.0.0.1 unless external)."""
        return self.server.host

    @property
    def port(self) -> int:
        """TCP port."""
        return self.server.port

    @property
    def password(self) -> str | None:
        """Password (``None`` if the server needs none)."""
        return self.server.password

    @property
    def version(self) -> str:
        """Server version, e.g. ``15.18`` (PostgreSQL) or ``7.0.15`` (Redis)."""
        return self.server.version

    def own_log_lines(self, text: str) -> str:
        """The lines of the server's log ``text`` that concern this test (all, unless the
        server is shared with other tests running at the same time)."""
        return text

    def _hand_out(self, resource: ClosableT) -> ClosableT:
        self._handed_out.append(resource)
        return resource

    def _close_handed_out(self) -> None:
        for resource in self._handed_out:
            with contextlib.suppress(Exception):
                resource.close()
        self._handed_out.clear()
