"""The links on the way to the engine's Python, which a sandbox recreates: each link met while
resolving a path, those inside link targets too, each once."""

from __future__ import annotations

from pathlib import Path

from pytest_cleanroom.interpreter import _links_on_the_way


def test_every_link_on_the_way_is_found_once(tmp_path: Path) -> None:
    tmp_path = tmp_path.resolve()
    (tmp_path / "store" / "venv-1" / "bin").mkdir(parents=True)
    (tmp_path / "project").mkdir()
    (tmp_path / "cache").symlink_to("store")  # a link inside the first link's target
    (tmp_path / "project" / ".venv").symlink_to("../cache/venv-1")
    found = _links_on_the_way(str(tmp_path / "project" / ".venv" / "bin"))
    assert found == {
        str(tmp_path / "project" / ".venv"): "../cache/venv-1",
        str(tmp_path / "cache"): "store",
    }


def test_a_path_without_links_has_none_and_a_loop_ends(tmp_path: Path) -> None:
    tmp_path = tmp_path.resolve()
    (tmp_path / "plain").mkdir()
    assert _links_on_the_way(str(tmp_path / "plain")) == {}
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    found = _links_on_the_way(str(tmp_path / "a" / "x"))
    assert found == {str(tmp_path / "a"): "b", str(tmp_path / "b"): "a"}
