"""Several registries seen as one: for each id the registry with the highest precedence wins.

A gpack id is never merged across registries (versions of ``io.x`` from a lower registry are
not mixed in): a public registry cannot shadow a team's private package by publishing a higher
version under the same id.

The same promise holds when a registry cannot be read: an id is looked up (``info``, ``add``,
``update``) only when every registry ranked above the one that serves it could be read (or
answered from its cached index). Otherwise the lookup fails naming the registry, unless
``allow_fallback`` is set; searching still lists what the readable registries offer, with a warning.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pytest_cleanroom.config_errors.suggest import did_you_mean

from .errors import MarketError, RegistryError, UnreadableRegistryError
from .index import Index, PackEntry
from .registry import Registry


class Catalog:
    """The packs of ``registries`` (highest precedence first), loaded on first use."""

    def __init__(self, registries: Sequence[Registry], *, allow_fallback: bool = False) -> None:
        self.registries = list(registries)
        self.allow_fallback = allow_fallback
        self.warnings: list[str] = []
        self.failures: list[tuple[Registry, MarketError]] = []
        # Which registry provides each id; entries are built only when asked for.
        self._owners: dict[str, tuple[Index, Registry]] | None = None
        self._loaded: list[tuple[Index, Registry]] = []

    def _load(self) -> dict[str, tuple[Index, Registry]]:
        if self._owners is not None:
            return self._owners
        owners: dict[str, tuple[Index, Registry]] = {}
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
            self._loaded.append((index, registry))
            source = (index, registry)
            if not owners:
                owners = dict.fromkeys(index.packs, source)
                continue
            for pid in index.packs:
                owners.setdefault(pid, source)
        if self.failures and len(self.failures) == len(self.registries):
            raise self.failures[0][1]
        self._owners = owners
        return owners

    def __iter__(self) -> Iterator[tuple[PackEntry, Registry]]:
        owners = self._load()
        for pid in sorted(owners):
            index, registry = owners[pid]
            yield index.packs[pid], registry

    def __len__(self) -> int:
        return len(self._load())

    def matching(self, words: list[str]) -> Iterator[tuple[PackEntry, Registry]]:
        """The packs whose id, name, description, tags or keywords contain every word.

        Cheaper than iterating over the whole catalog: entries are built for the matches only.
        """
        owners = self._load()
        for index, registry in self._loaded:
            for pid in index.matching(words):
                if owners[pid][1] is registry:
                    yield index.packs[pid], registry

    def get(self, pack_id: str) -> tuple[PackEntry, Registry] | None:
        """The entry for ``pack_id`` and the registry providing it, or ``None``.

        Raises :class:`UnreadableRegistryError` when a registry ranked above the provider (or any
        registry, for an id found nowhere) could not be read, unless ``allow_fallback``.
        """
        found = self._load().get(pack_id)
        self._check_precedence(pack_id, found[1] if found else None)
        if found is None:
            return None
        index, registry = found
        return index.packs[pack_id], registry

    def _check_precedence(self, pack_id: str, provider: Registry | None) -> None:
        rank = self.registries.index(provider) if provider else len(self.registries)
        above = [(reg, exc) for reg, exc in self.failures if self.registries.index(reg) < rank]
        if not above:
            return
        names = ", ".join(reg.url for reg, _ in above)
        if self.allow_fallback:
            if provider is not None:
                note = f"{pack_id}: taken from {provider.url} although {names} could not be read"
                if note not in self.warnings:
                    self.warnings.append(f"{note} (--allow-fallback)")
            return
        registry, exc = above[0]
        where = f"taken from {provider.url}, which ranks below it" if provider else "looked up"
        raise UnreadableRegistryError(
            f"registry {registry.url} cannot be read and has no cached index ({exc}); {pack_id}"
            f" is not {where}, since a lower registry must not stand in for a higher one. Make"
            " it reachable, or pass --allow-fallback to accept the next registry that has the id"
        )

    def lookup(self, pack_id: str) -> PackEntry | None:
        """The entry for ``pack_id``, or ``None``."""
        found = self.get(pack_id)
        return found[0] if found else None

    def require(self, pack_id: str) -> tuple[PackEntry, Registry]:
        """Like :meth:`get`, but a missing id is a :class:`RegistryError` with a suggestion."""
        found = self.get(pack_id)
        if found is not None:
            return found
        hint = did_you_mean(pack_id, self._load(), aside=True)
        down = "".join(f"; {exc}" for _, exc in self.failures)  # only with --allow-fallback
        raise RegistryError(f"{pack_id}: not found in any registry{hint}{down}")
