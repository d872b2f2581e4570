"""The resolver and the search ranking, on in-memory indexes."""

from __future__ import annotations

import pytest

from ggen_market.errors import ResolutionError
from ggen_market.index import PackEntry, PackVersion
from ggen_market.resolver import resolve
from ggen_market.search import search

SHA = "0" * 64


def entry(pid: str, versions: dict[str, dict[str, str]], **meta: object) -> PackEntry:
    return PackEntry(
        id=pid,
        name=str(meta.pop("name", pid.rsplit(".", 1)[-1])),
        versions={
            v: PackVersion(id=pid, version=v, archive=f"{pid}-{v}", sha256=SHA, dependencies=d)
            for v, d in versions.items()
        },
        **meta,  # type: ignore[arg-type]
    )


def catalog(*entries: PackEntry) -> dict[str, PackEntry]:
    return {e.id: e for e in entries}


def test_backtracks_to_a_version_that_fits() -> None:
    # app 2.0 needs lib ^2 (absent); resolution must fall back to app 1.x.
    packs = catalog(
        entry("io.t.app", {"1.0.0": {"io.t.lib": "^1"}, "2.0.0": {"io.t.lib": "^2"}}),
        entry("io.t.lib", {"1.0.0": {}, "1.5.0": {}}),
        entry("io.t.top", {"1.0.0": {"io.t.app": "*", "io.t.lib": "<2"}}),
    )
    chosen = resolve({"io.t.top": "^1", "io.t.lib": "^1.0"}, packs.get)
    assert {k: v.version for k, v in chosen.items()} == {
        "io.t.top": "1.0.0", "io.t.app": "1.0.0", "io.t.lib": "1.5.0",
    }  # fmt: skip


def test_prefers_pinned_versions() -> None:
    packs = catalog(entry("io.t.lib", {"1.0.0": {}, "1.5.0": {}}))
    assert (
        resolve({"io.t.lib": "^1"}, packs.get, prefer={"io.t.lib": "1.0.0"})["io.t.lib"].version
        == "1.0.0"
    )
    assert resolve({"io.t.lib": "^1"}, packs.get)["io.t.lib"].version == "1.5.0"


def test_self_dependency_is_a_cycle() -> None:
    packs = catalog(entry("io.t.a", {"1.0.0": {"io.t.a": "*"}}))
    with pytest.raises(ResolutionError, match=r"dependency cycle: io.t.a@1.0.0 -> io.t.a@1.0.0"):
        resolve({"io.t.a": "*"}, packs.get)


def test_unknown_dependency_names_the_requester() -> None:
    packs = catalog(entry("io.t.a", {"1.0.0": {"io.t.ghost": "^1"}}))
    with pytest.raises(
        ResolutionError, match=r"io.t.ghost \(io.t.a@1.0.0 requires \^1\) is not in any registry"
    ):
        resolve({"io.t.a": "*"}, packs.get)


def test_search_ranking() -> None:
    packs = [
        (entry("io.x.rust-cli", {"1.0.0": {}}, description="cli tools", downloads=5), "r"),
        (entry("io.x.cli", {"1.0.0": {}}, name="Command line", downloads=1), "r"),
        (entry("io.x.other", {"1.0.0": {}}, tags=("cli",), downloads=100), "r"),
        (entry("io.x.docs", {"1.0.0": {}}, description="explains the cli", downloads=1000), "r"),
        (entry("io.x.kw", {"1.0.0": {}}, keywords=("cli",), downloads=50), "r"),
        (entry("io.x.none", {"1.0.0": {}}, description="nothing", downloads=9999), "r"),
    ]
    ids = [h.entry.id for h in search(packs, "cli")]
    assert ids == ["io.x.cli", "io.x.rust-cli", "io.x.other", "io.x.kw", "io.x.docs"]
    assert search(packs, "io.x.docs")[0].entry.id == "io.x.docs"
    assert [h.entry.id for h in search(packs, "cli explains")] == ["io.x.docs"]
    by_downloads = [h.entry.id for h in search(packs, "")]
    assert by_downloads[:2] == ["io.x.none", "io.x.docs"]
    assert [h.entry.id for h in search(packs, "", tag="cli")] == ["io.x.other"]
    assert len(search(packs, "", limit=2)) == 2


def test_search_finds_and_ranks_category_and_tag_matches() -> None:
    packs = [
        (entry("io.x.fhir", {"1.0.0": {}}, category="healthcare", downloads=1), "r"),
        (entry("io.x.hl7", {"1.0.0": {}}, tags=("healthcare",), downloads=2), "r"),
        (entry("io.x.blog", {"1.0.0": {}}, description="a healthcare blog", downloads=500), "r"),
        (entry("io.x.web", {"1.0.0": {}}, category="web", downloads=900), "r"),
    ]
    ids = [h.entry.id for h in search(packs, "healthcare")]
    assert ids == ["io.x.hl7", "io.x.fhir", "io.x.blog"]  # category and tag above description
