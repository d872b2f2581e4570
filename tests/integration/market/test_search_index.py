"""Search reads only the matching packs of an index: precedence and the parsed-index cache hold."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import ggen


def _pack(root: Path, pack_id: str, version: str, description: str) -> None:
    path = root / f"{pack_id}-{version}"
    path.mkdir(parents=True)
    (path / "gpack.toml").write_text(
        f'[gpack]\nid = "{pack_id}"\nname = "{pack_id.rsplit(".", 1)[-1]}"\n'
        f'version = "{version}"\ndescription = "{description}"\nkeywords = ["kw-{version}"]\n'
    )


def _search(query: str, *registries: Path, project: Path) -> list[tuple[str, str, str]]:
    args = [a for r in registries for a in ("--registry", str(r))]
    result = ggen("market", "search", query, *args, "--project", str(project), "--json")
    assert result.exit_code == 0, result.output
    return [(r["id"], r["latest"], r["registry"]) for r in json.loads(result.stdout)["results"]]


def test_a_shadowed_pack_is_not_found_through_the_lower_registry(
    project: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    team, public = tmp_path / "team", tmp_path / "public"
    _pack(team, "io.shared.lib", "1.0.0", "the team's library")
    _pack(public, "io.shared.lib", "9.0.0", "zebra library")  # shadowed by the team's
    _pack(public, "io.public.zebra", "1.0.0", "zebra tools")
    assert ggen("market", "index", str(public)).exit_code == 0  # public: index.json; team: a folder
    for _ in range(2):  # the second run reads the parsed-index cache
        assert _search("zebra", team, public, project=project) == [
            ("io.public.zebra", "1.0.0", public.as_uri())
        ]
        assert _search("LIBRARY", team, public, project=project) == [
            ("io.shared.lib", "1.0.0", team.as_uri())
        ]
        assert _search("kw-9.0.0", team, public, project=project) == []
    assert list((Path(env["GGEN_CACHE_DIR"]) / "parsed-index").glob("*.bin"))
    # Alone, the public registry's version is found, by every field search looks at.
    for query in ("io.shared", "zebra library", "kw-9.0.0", "lib"):
        assert _search(query, public, project=project)[0][:2] == ("io.shared.lib", "9.0.0")


def test_search_results_are_the_same_from_the_document_and_from_the_cache(
    project: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    registry = tmp_path / "registry"
    for i in range(30):
        _pack(registry, f"io.many.pack{i}", f"1.{i % 3}.0", f"tool number {i} for {i % 4} things")
    assert ggen("market", "index", str(registry)).exit_code == 0
    queries = ("tool", "pack1", "3 things", "number 2", "kw-1.1.0", "nothing-matches")
    fresh = {q: _search(q, registry, project=project) for q in queries}
    cached = {q: _search(q, registry, project=project) for q in queries}
    assert fresh == cached
    assert len(fresh["tool"]) == 20  # the default --limit
    assert {r[0] for r in fresh["pack1"]} == {"io.many.pack1"} | {
        f"io.many.pack{i}" for i in range(10, 20)
    }
    assert fresh["nothing-matches"] == []
