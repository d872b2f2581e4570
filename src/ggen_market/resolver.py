"""Dependency resolution: pick one version per gpack so every range is satisfied.

A depth-first search with backtracking over candidate versions (versions pinned in ggen.lock
first, then newest first). When nothing fits, the error lists who asked for what and which
versions exist. Cycles are refused: a gpack cannot, through its dependencies, depend on itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .errors import ResolutionError
from .index import PackEntry, PackVersion
from .versions import Version, VersionRange, parse_range

REQUESTED = "your request"
MAX_STEPS = 20_000


@dataclass(frozen=True)
class _Need:
    range: VersionRange
    requester: str


class _Resolver:
    def __init__(
        self,
        lookup: Callable[[str], PackEntry | None],
        prefer: Mapping[str, str],
        tool_version: str,
    ) -> None:
        self.lookup = lookup
        self.prefer = prefer
        self.tool_version = Version.parse(tool_version)
        self.steps = 0
        self.conflict: str | None = None
        self.conflict_weight = -1

    def _record(self, weight: int, message: str) -> None:
        if weight > self.conflict_weight:
            self.conflict, self.conflict_weight = message, weight

    def conflict_message(self, pid: str, needs: list[_Need]) -> str:
        lines = "\n  ".join(f"{n.requester} requires {pid} {n.range.text or '*'}" for n in needs)
        entry = self.lookup(pid)
        available = ", ".join(str(v) for v in entry.sorted_versions()) if entry else "none"
        return (
            f"no version of {pid} satisfies every requirement:\n  {lines}\n  available: {available}"
        )

    def candidates(self, pid: str, needs: list[_Need]) -> list[PackVersion]:
        entry = self.lookup(pid)
        wanted = "; ".join(f"{n.requester} requires {n.range.text or '*'}" for n in needs)
        if entry is None:
            self._record(1, f"{pid} ({wanted}) is not in any registry")
            return []
        fits = [
            entry.versions[str(v)]
            for v in entry.sorted_versions()
            if all(n.range.allows(v) for n in needs)
        ]
        compatible = [pv for pv in fits if parse_range(pv.ggen_compat).allows(self.tool_version)]
        if not compatible:
            if fits:
                detail = ", ".join(f"{pv.version} needs ggen {pv.ggen_compat}" for pv in fits)
                self._record(
                    2,
                    f"{pid}: the versions that fit ({detail}) do not support this ggen"
                    f" ({self.tool_version})",
                )
            else:
                self._record(len(needs) + 2, self.conflict_message(pid, needs))
            return []
        pinned = self.prefer.get(pid)
        compatible.sort(key=lambda pv: pv.version != pinned)  # stable: pinned first, then newest
        return compatible

    def solve(
        self, chosen: dict[str, PackVersion], needs: dict[str, list[_Need]]
    ) -> dict[str, PackVersion] | None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise ResolutionError(
                f"dependency resolution gave up after {MAX_STEPS} steps; pin versions to help it"
            )
        open_ids = sorted(pid for pid in needs if pid not in chosen)
        if not open_ids:
            return chosen
        pid = open_ids[0]
        for candidate in self.candidates(pid, needs[pid]):
            label = f"{pid}@{candidate.version}"
            next_needs = {k: list(v) for k, v in needs.items()}
            clash = False
            for dep_id, text in sorted(candidate.dependencies.items()):
                need = _Need(parse_range(text), label)
                next_needs.setdefault(dep_id, []).append(need)
                picked = chosen.get(dep_id)
                if picked is not None and not need.range.allows(picked.version):
                    needs_now = next_needs[dep_id]
                    self._record(len(needs_now) + 2, self.conflict_message(dep_id, needs_now))
                    clash = True
                    break
            if clash:
                continue
            result = self.solve({**chosen, pid: candidate}, next_needs)
            if result is not None:
                return result
        return None


def resolve(
    requirements: Mapping[str, str],
    lookup: Callable[[str], PackEntry | None],
    *,
    prefer: Mapping[str, str] | None = None,
    tool_version: str = "0.0.0",
) -> dict[str, PackVersion]:
    """Versions for ``requirements`` (id -> range) and everything they depend on.

    ``prefer`` maps ids to versions to keep when they still fit (what ggen.lock pinned).
    Raises :class:`ResolutionError` for unknown ids, conflicts and cycles.
    """
    resolver = _Resolver(lookup, prefer or {}, tool_version)
    needs = {
        pid: [_Need(parse_range(text, what=f"range of {pid}"), REQUESTED)]
        for pid, text in requirements.items()
    }
    result = resolver.solve({}, needs)
    if result is None:
        raise ResolutionError(resolver.conflict or "dependencies cannot be satisfied")
    check_cycles(result)
    return result


def check_cycles(chosen: Mapping[str, PackVersion]) -> None:
    """Raise :class:`ResolutionError` naming the path of the first dependency cycle found."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(pid: str) -> None:
        state[pid] = 1
        path.append(pid)
        for dep in sorted(chosen[pid].dependencies):
            if dep not in chosen:
                continue
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep]
                shown = " -> ".join(f"{p}@{chosen[p].version}" for p in cycle)
                raise ResolutionError(f"dependency cycle: {shown}")
            if dep not in state:
                visit(dep)
        path.pop()
        state[pid] = 2

    for pid in sorted(chosen):
        if pid not in state:
            visit(pid)
