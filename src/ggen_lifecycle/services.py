"""PostgreSQL and Redis for cleanroom phases (``[lifecycle.X.cleanroom] services = [...]``).

The servers come from pytest-cleanroom's service providers (an external URL from
``CLEANROOM_POSTGRES_URL``/``CLEANROOM_REDIS_URL``, a server started from the machine's binaries,
or a container), chosen exactly as the pytest fixtures choose them. They are started on the first
task that needs them and stopped when the run ends. Each task gets a database of its own (dropped
afterwards) and a Redis database index of its own (flushed before and after).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import TaskFailedError


@dataclass(frozen=True)
class Exposure:
    """What a task's commands need to reach one service: its socket directory and variables."""

    name: str
    socket_dir: Path | None
    env: dict[str, str]


class ServiceSession:
    """The servers of one ``ggen lifecycle`` invocation; :meth:`close` stops them."""

    def __init__(self, project_root: Path) -> None:
        self.project_root = project_root
        self._lock = threading.Lock()
        self._hub: Any = None
        self._shared_dir: Path | None = None
        self._factory: Any = None
        self._free_redis: list[int] = []
        self._next_redis = 0

    def _get_hub(self) -> Any:
        from pytest_cleanroom.services.hub import RunContext, ServiceHub, new_run_id
        from pytest_cleanroom.services.registry import Owner
        from pytest_cleanroom.services.settings import ServiceSettings

        if self._hub is None:
            settings = ServiceSettings.resolve(
                option=lambda name: None,
                ini=lambda key: None,
                env=os.environ,
                base_dir=self.project_root,
            )
            self._shared_dir = Path(tempfile.mkdtemp(prefix="ggen-services-"))
            run = RunContext(
                run_id=new_run_id(), owner=Owner.current(), shared_dir=self._shared_dir
            )
            self._hub = ServiceHub(settings, run)
        return self._hub

    def _postgres(self) -> Any:
        from pytest_cleanroom.services.postgres.isolation import DatabaseFactory
        from pytest_cleanroom.services.postgres.template import run_template

        with self._lock:
            hub = self._get_hub()
            if self._factory is None:
                server = hub.server("postgres")
                self._factory = DatabaseFactory(
                    server, run_template(hub), f"{hub.run.db_prefix}ggen_"
                )
            return self._factory

    def _redis_slot(self) -> Any:
        from pytest_cleanroom.services.redis.isolation import RedisSlot

        with self._lock:
            hub = self._get_hub()
            server = hub.server("redis")
            if self._free_redis:
                index = self._free_redis.pop()
            else:
                index = self._next_redis
                self._next_redis += 1
            return RedisSlot(server, index, f"task{index}"), index

    @contextlib.contextmanager
    def for_task(
        self, names: Sequence[str], *, phase: str, workspace: str | None, command: str | None = None
    ) -> Iterator[list[Exposure]]:
        """Start (once) and hand out ``names`` for one task; released when the block ends."""
        from pytest_cleanroom.services.errors import ServiceError

        exposures: list[Exposure] = []
        releases: list[Any] = []
        try:
            try:
                for name in names:
                    if name == "postgres":
                        factory = self._postgres()
                        database = factory.isolate()
                        releases.append(lambda f=factory, d=database: f.reset(d))
                        socket = database.unix_socket_dir
                        exposures.append(
                            Exposure(name, Path(socket) if socket else None, database.sandbox_env())
                        )
                    elif name == "redis":
                        slot, index = self._redis_slot()
                        database = slot.isolate()

                        def release(s: Any = slot, d: Any = database, i: int = index) -> None:
                            try:
                                s.reset(d)
                                s.close()
                            finally:
                                with self._lock:
                                    self._free_redis.append(i)

                        releases.append(release)
                        socket = database.unix_socket
                        exposures.append(
                            Exposure(
                                name,
                                Path(socket).parent if socket else None,
                                database.sandbox_env(),
                            )
                        )
            except ServiceError as exc:
                raise TaskFailedError(
                    f"cannot provide service for the cleanroom phase: {exc}",
                    phase=phase,
                    workspace=workspace,
                    command=command,
                ) from None
            except ModuleNotFoundError as exc:
                from pytest_cleanroom.config_errors.extras import missing_extra

                fix = missing_extra(exc)
                if fix is None:
                    raise
                raise TaskFailedError(
                    f"cannot provide service for the cleanroom phase: {fix}",
                    phase=phase,
                    workspace=workspace,
                    command=command,
                ) from None
            yield exposures
        finally:
            for release in reversed(releases):
                with contextlib.suppress(Exception):
                    release()

    def close(self) -> list[str]:
        """Stop every server this session started; returns problems worth reporting."""
        problems: list[str] = []
        if self._factory is not None:
            with contextlib.suppress(Exception):
                self._factory.close()
        if self._hub is not None:
            from pytest_cleanroom.services.hub import teardown_run

            problems = teardown_run(self._hub.run.state_dir)
        if self._shared_dir is not None:
            shutil.rmtree(self._shared_dir, ignore_errors=True)
        return problems
