"""Ranked search over a catalog: exact id, name, category, tags, keywords, description, then
downloads."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .index import PackEntry, search_text


@dataclass(frozen=True)
class Hit:
    """A search result: the entry, the registry name it comes from and its score."""

    entry: PackEntry
    registry: str
    score: int


def _term_score(entry: PackEntry, term: str) -> int:
    pid = entry.id
    name = entry.name.lower()
    if pid == term:
        return 1000
    if pid.rsplit(".", 1)[-1] == term:
        return 800
    if name == term:
        return 600
    if term in pid:
        return 400
    if term in name:
        return 300
    if term == entry.category.lower() or term in entry.tags:
        return 200
    if any(term == k.lower() for k in entry.keywords):
        return 150
    if (
        any(term in t for t in entry.tags)
        or any(term in k.lower() for k in entry.keywords)
        or term in entry.category.lower()
    ):
        return 80
    if term in entry.description.lower():
        return 50
    return 0


def search(
    packs: Iterable[tuple[PackEntry, str]],
    query: str,
    *,
    category: str | None = None,
    tag: str | None = None,
    limit: int | None = 20,
) -> list[Hit]:
    """Entries matching every word of ``query`` (all entries for an empty query), best first."""
    terms = query.lower().split()
    whole = query.strip().lower()
    hits: list[Hit] = []
    for entry, registry in packs:
        if category is not None and entry.category != category:
            continue
        if tag is not None and tag not in entry.tags:
            continue
        if terms:
            haystack = search_text(
                entry.id, entry.name, entry.description, entry.tags, entry.keywords, entry.category
            )
            if not all(term in haystack for term in terms):
                continue
        score = 0
        for term in terms:
            points = _term_score(entry, term)
            if points == 0:
                break
            score += points
        else:
            if whole and entry.id == whole:
                score += 10_000
            hits.append(Hit(entry, registry, score))
    hits.sort(key=lambda h: (-h.score, -h.entry.downloads, h.entry.id))
    return hits if limit is None else hits[:limit]
