"""Per-test isolation on Redis: a database index per worker, emptied after each test, and a
worker's own server put back as it was."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from ..errors import ServiceError
from ..protocol import Isolation
from .model import RedisDatabase, RedisServer

if TYPE_CHECKING:
    import redis as redis_py


class RedisSlot(Isolation[RedisDatabase]):
    """A Redis database index for one test at a time, emptied after each test.

    On a ``dedicated`` server (one per xdist worker: the process and container providers) the whole
    server is reset after each test as well: functions and scripts flushed, ``CONFIG SET``
    changes and ACL users put back as they were, pub/sub subscribers disconnected. On a shared
    server (external) only the index is flushed.
    """

    def __init__(
        self, server: RedisServer, index: int, worker_id: str, *, dedicated: bool = False
    ) -> None:
        self.server = server
        self.db = server.db_base + index
        self.dedicated = dedicated
        if self.db >= server.databases:
            raise ServiceError(
                f"Redis has {server.databases} databases but worker {worker_id} needs index "
                f"{self.db}: run fewer xdist workers (or ggen lifecycle tasks at once, -j), "
                "lower the URL's database number, or raise the server's 'databases' setting"
            )
        self._admin: redis_py.Redis | None = None
        self._baseline: tuple[dict[str, str], list[str]] | None = None
        self._calls: dict[str, int] = {}

    def _client(self) -> redis_py.Redis:
        if self._admin is None:
            self._admin = self.server.client(self.db)
        return self._admin

    def flush(self) -> None:
        """Empty this test's database (and only it)."""
        self._client().flushdb()

    def isolate(self) -> RedisDatabase:
        """This worker's index, for the calling test."""
        if self._baseline is None:  # whatever a crashed earlier run left in this index
            self.flush()
            self._baseline = self._server_state() if self.dedicated else ({}, [])
            if self.dedicated:
                self._calls = _watched_calls(self._client().info("commandstats"))
        return RedisDatabase(self.server, self.db)

    def _server_state(self) -> tuple[dict[str, str], list[str]]:
        client = self._client()
        config = _cmd(client, "CONFIG", "GET", "*")
        acl = _cmd(client, "ACL", "LIST")
        return _config_dict(config), sorted(_text(line) for line in acl)

    def reset(self, handle: RedisDatabase) -> None:
        """Close the test's clients and empty its index (a dedicated server: reset it all)."""
        handle.close_clients()
        if not self.dedicated:
            self.flush()
            return
        self.reset_server()

    def reset_server(self) -> list[str]:
        """Put the dedicated server back as it was when this slot first served (see class).

        One round trip when the test changed no setting and no user: the server's command
        counters say whether ``CONFIG GET *`` and ``ACL LIST`` need comparing at all.
        """
        assert self._baseline is not None
        pipe = self._client().pipeline(transaction=False)
        for command in RESET_COMMANDS:
            _cmd(pipe, *command)
        pipe.info("commandstats")
        results = pipe.execute(raise_on_error=False)
        calls = _watched_calls(results[-1])
        if calls == self._calls:
            return []
        undone: list[str] = []
        if any(calls.get(n) != self._calls.get(n) for n in SCRIPTING_COMMANDS):
            _cmd(self._client(), "FUNCTION", "FLUSH")
            _cmd(self._client(), "SCRIPT", "FLUSH")
            undone.append("functions and scripts")
        if any(calls.get(n) != self._calls.get(n) for n in WATCHED_COMMANDS):
            undone += self._restore_config_and_users()
        self._calls = _watched_calls(self._client().info("commandstats"))
        return undone

    def _restore_config_and_users(self) -> list[str]:
        assert self._baseline is not None
        config_before, acl_before = self._baseline
        config, acl = self._server_state()
        undone: list[str] = []
        changed = [k for k, v in config_before.items() if config.get(k) != v]
        if changed:
            args = [part for key in changed for part in (key, config_before[key])]
            _cmd(self._client(), "CONFIG", "SET", *args)
            undone.append("CONFIG SET " + " ".join(changed))
        if acl != acl_before:
            undone += self._restore_acl(acl, acl_before)
        return undone

    def _restore_acl(self, acl: list[str], acl_before: list[str]) -> list[str]:
        client = self._client()
        before = {line.split()[1]: line for line in acl_before}
        now = {line.split()[1]: line for line in acl}
        extra = sorted(set(now) - set(before))
        if extra:
            _cmd(client, "ACL", "DELUSER", *extra)
        for name, line in before.items():
            if now.get(name) != line:
                _cmd(client, "ACL", "SETUSER", name, "reset", *line.split()[2:])
        return [f"ACL users {', '.join(extra or sorted(before))}"]

    def close(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
            self._admin = None


#: Sent after every test on a dedicated server, in one round trip.
RESET_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("FLUSHALL",),
    ("CLIENT", "KILL", "TYPE", "pubsub", "SKIPME", "yes"),
    ("CLIENT", "KILL", "USER", "default", "SKIPME", "yes"),
)
#: Commands that change settings or users; any call since the last reset (or a counter reset)
#: means comparing the whole configuration and user list with the first test's.
WATCHED_COMMANDS = ("config|set", "config|resetstat", "acl|setuser", "acl|deluser", "acl|load")
#: Commands that leave functions or cached scripts behind: flushed after a test that ran one.
SCRIPTING_COMMANDS = (
    "function|load",
    "function|restore",
    "script|load",
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
)


def _watched_calls(info: Any) -> dict[str, int]:
    """How often each of :data:`WATCHED_COMMANDS` ran, from ``INFO commandstats``."""
    if not isinstance(info, dict):
        return {"unreadable": 1}  # compare everything
    calls = {}
    for name in (*WATCHED_COMMANDS, *SCRIPTING_COMMANDS):
        stats = info.get(f"cmdstat_{name}")
        if isinstance(stats, dict):
            calls[name] = int(stats.get("calls", 0))
    return calls


def _cmd(target: Any, *args: Any) -> Any:
    """``execute_command`` of a client or pipeline (untyped in redis-py)."""
    return target.execute_command(*args)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _config_dict(reply: object) -> dict[str, str]:
    """``CONFIG GET *`` as a dict (redis-py may already have made it one)."""
    if isinstance(reply, dict):
        return {_text(k): _text(v) for k, v in reply.items()}
    items = [_text(v) for v in reply] if isinstance(reply, list) else []
    return dict(zip(items[::2], items[1::2], strict=True))
