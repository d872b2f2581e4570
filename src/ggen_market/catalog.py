"""Several registries seen as one: for each id the registry with the highest precedence wins.

A gpack id is never merged across registries (versions of ``io.x`` from a lower registry are
not mixed in): a public registry cannot shadow a team's private package by publishing a higher
version under the same id.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .errors import MarketError, RegistryError
from .index import PackEntry
from .registry import Registry
from .suggest import did_you_mean


class Catalog:
    """The packs of ``registries`` (highest precedence first), loaded on first use."""

    def __init__(self, registries: Sequence[Registry]) -> None:
        self.registries = list(registries)
        self.warnings: list[str] = []
        self.failures: list[tuple[Registry, MarketError]] = []
        self._packs: dict[str, tuple[PackEntry, Registry]] | None = None

    def _load(self) -> dict[str, tuple[PackEntry, Registry]]:
        if self._packs is not None:
            return self._packs
        packs: dict[str, tuple[PackEntry, Registry]] = {}
        for registry in self.registries:
            try:
                index = registry.index()
            except MarketError as exc:
                self.failures.append((registry, exc))
                self.warnings.append(str(exc))
                continue
            finally:
                self.warnings.extend(registry.warnings)
                registry.warnings.clear()
            for pid, entry in index.packs.items():
                packs.setdefault(pid, (entry, registry))
        if self.failures and len(self.failures) == len(self.registries):
            raise self.failures[0][1]
        self._packs = packs
        return packs

    def __iter__(self) -> Iterator[tuple[PackEntry, Registry]]:
        packs = self._load()
        return iter(packs[pid] for pid in sorted(packs))

    def __len__(self) -> int:
        return len(self._load())

    def get(self, pack_id: str) -> tuple[PackEntry, Registry] | None:
        """The entry for ``pack_id`` and the registry providing it, or ``None``."""
        return self._load().get(pack_id)

    def lookup(self, pack_id: str) -> PackEntry | None:
        """The entry for ``pack_id``, or ``None``."""
        found = self.get(pack_id)
        return found[0] if found else None

    def require(self, pack_id: str) -> tuple[PackEntry, Registry]:
        """Like :meth:`get`, but a missing id is a :class:`RegistryError` with a suggestion."""
        found = self.get(pack_id)
        if found is not None:
            return found
        hint = did_you_mean(pack_id, self._load())
        down = "".join(f"; {exc}" for _, exc in self.failures)
        raise RegistryError(f"{pack_id}: not found in any registry{hint}{down}")
