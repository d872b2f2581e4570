"""The project and registries a ``ggen market`` command works with (click-free)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .catalog import Catalog
    from .config import MarketConfig
    from .install import Project


@dataclass(frozen=True)
class Sources:
    """The project and registries a command works with, as the shared options set them.

    Nothing is read until :meth:`catalog` or :meth:`open_project` is called, so a command
    that needs neither (``list`` without ``--available``) stays as cheap as it was.
    """

    project: Path
    registries: tuple[str, ...]
    offline: bool
    timeout: float | None
    progress: bool | None
    #: ``--allow-fallback``: a lower registry may serve an id when one above it cannot be read.
    allow_fallback: bool = False
    #: ``--require-validated``: install only versions a trusted key validated.
    require_validated: bool = False

    def config(self) -> MarketConfig:
        from .config import load_config

        return load_config(self.project, self.registries, self.timeout)

    def catalog(self) -> Catalog:
        """The registries to read, without loading what installing needs (keeps search fast)."""
        from .catalog import Catalog
        from .config import embedded_gpacks_dir
        from .registry import open_registry

        config = self.config()
        embedded = embedded_gpacks_dir()
        return Catalog(
            [
                open_registry(
                    spec.url,
                    cache=config.cache_dir,
                    timeout=config.timeout,
                    offline=self.offline,
                    embedded=embedded,
                )
                for spec in config.registries
            ],
            allow_fallback=self.allow_fallback,
        )

    def open_project(self) -> Project:
        """The project, to install into or change."""
        from .install import Project
        from .progress import Progress

        return Project(
            self.project,
            self.config(),
            offline=self.offline,
            progress=Progress(enabled=self.progress),
            allow_fallback=self.allow_fallback,
            require_validated=self.require_validated,
        )
