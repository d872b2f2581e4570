"""Registries fail closed: a team registry that cannot be read stops resolution; nothing written.

Real registries only: an HTTP server on 127.0.0.1 that is down, or goes down in the middle of
``add``, ranked above a local "public" registry that serves an impostor of the same id.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ggen_market.lockfile import read_lock
from tests.conftest import ggen_env, run_ggen

from .conftest import HttpRegistry, ggen, tree_state, write_gpack

INTERNAL = "io.example.internal"


def team_and_public(tmp_path: Path, project: Path, team_url: str) -> Path:
    """``ggen.toml`` listing ``team`` (HTTP) above ``public`` (a folder with the impostor)."""
    public = tmp_path / "public"
    write_gpack(public, INTERNAL, "9.9.9", files={"rdf/evil.ttl": "<urn:x> <urn:y> <urn:z> .\n"})
    (project / "ggen.toml").write_text(
        "[market]\nuse_embedded = false\n\n"
        f'[[market.registries]]\nname = "team"\nurl = "{team_url}"\n\n'
        f'[[market.registries]]\nname = "public"\nurl = "{public}"\n'
    )
    return public


def publish_team(registry: HttpRegistry, tmp_path: Path) -> None:
    src = tmp_path / "team-src"
    write_gpack(src, INTERNAL, "1.0.0")
    write_gpack(src, "io.example.tool", "2.0.0", deps={INTERNAL: "^1.0"})
    result = ggen("market", "index", str(src), "--output", str(registry.control.root))
    assert result.exit_code == 0, result.output


def test_a_down_team_registry_stops_add_instead_of_installing_the_impostor(
    http_registry: HttpRegistry, project: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    team_and_public(tmp_path, project, http_registry.url)
    http_registry.stop()  # down, and never cached
    before = tree_state(project)
    # The real process (ggen's click-free `add` path) and click's path agree.
    proc = run_ggen("market", "add", INTERNAL, cwd=project, env=ggen_env(**env))
    assert proc.returncode == 1
    assert f"registry {http_registry.url} cannot be read and has no cached index" in proc.stderr
    assert "--allow-fallback" in proc.stderr
    result = ggen("market", "add", INTERNAL, "--project", str(project), "--json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)
    assert error["ok"] is False
    assert error["kind"] == "UnreadableRegistryError"
    assert http_registry.url in error["error"]
    assert tree_state(project) == before  # no ggen.lock, no .ggen/


def test_info_fails_closed_and_search_only_warns(
    http_registry: HttpRegistry, project: Path, tmp_path: Path
) -> None:
    team_and_public(tmp_path, project, http_registry.url)
    http_registry.stop()
    info = ggen("market", "info", INTERNAL, "--project", str(project))
    assert info.exit_code == 1
    assert "cannot be read and has no cached index" in info.stderr
    search = ggen("market", "search", "internal", "--project", str(project), "--json")
    assert search.exit_code == 0, search.output
    assert [r["id"] for r in json.loads(search.stdout)["results"]] == [INTERNAL]
    assert "unreachable" in search.stderr


def test_allow_fallback_installs_from_the_next_registry_and_says_so(
    http_registry: HttpRegistry, project: Path, tmp_path: Path
) -> None:
    public = team_and_public(tmp_path, project, http_registry.url)
    http_registry.stop()
    result = ggen("market", "add", INTERNAL, "--project", str(project), "--allow-fallback")
    assert result.exit_code == 0, result.output
    assert f"taken from {public.as_uri()} although {http_registry.url}" in result.stderr
    lock = read_lock(project / "ggen.lock")
    assert lock is not None
    assert lock.packages[INTERNAL].source == public.as_uri()


def test_an_id_served_above_the_down_registry_still_resolves(
    http_registry: HttpRegistry, project: Path, tmp_path: Path
) -> None:
    """Only registries ranked above the provider matter: a down one below cannot shadow it."""
    public = tmp_path / "first"
    write_gpack(public, "io.example.other", "1.0.0")
    (project / "ggen.toml").write_text(
        "[market]\nuse_embedded = false\n\n"
        f'[[market.registries]]\nname = "first"\nurl = "{public}"\n\n'
        f'[[market.registries]]\nname = "team"\nurl = "{http_registry.url}"\n'
    )
    http_registry.stop()
    result = ggen("market", "add", "io.example.other", "--project", str(project))
    assert result.exit_code == 0, result.output
    assert "unreachable" in result.stderr  # the warning about the team registry stays


def test_a_cached_index_keeps_the_team_registry_in_charge(
    http_registry: HttpRegistry, project: Path, tmp_path: Path
) -> None:
    publish_team(http_registry, tmp_path)
    team_and_public(tmp_path, project, http_registry.url)
    assert ggen("market", "info", INTERNAL, "--project", str(project)).exit_code == 0  # cached
    http_registry.stop()
    info = ggen("market", "info", INTERNAL, "--project", str(project), "--json")
    assert info.exit_code == 0, info.output
    pack = json.loads(info.stdout)["pack"]
    assert pack["registry"] == http_registry.url
    assert [v["version"] for v in pack["versions"]] == ["1.0.0"]  # not the impostor's 9.9.9
    add = ggen("market", "add", INTERNAL, "--project", str(project))
    assert add.exit_code == 1  # the archive cannot be fetched: an error, not the impostor
    assert not (project / "ggen.lock").exists()
    assert not (project / ".ggen").exists()


@pytest.mark.parametrize("installed_first", [False, True])
def test_registry_going_down_in_the_middle_of_add_changes_nothing(
    http_registry: HttpRegistry, project: Path, tmp_path: Path, installed_first: bool
) -> None:
    publish_team(http_registry, tmp_path)
    team_and_public(tmp_path, project, http_registry.url)
    if installed_first:
        first = ggen("market", "add", INTERNAL, "--project", str(project))
        assert first.exit_code == 0, first.output
    before = tree_state(project)
    # The index is served; the server dies when the tool's archive is asked for.
    http_registry.control.go_down_on = "io.example.tool-2.0.0.tar.gz"
    result = ggen("market", "add", "io.example.tool", "--project", str(project), "--json")
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["ok"] is False
    assert ("/archives/io.example.tool-2.0.0.tar.gz", 0) in http_registry.control.requests
    assert tree_state(project) == before


def test_add_and_update_without_a_lock_say_nothing_is_pinned(project: Path) -> None:
    for command in ("add", "update"):
        result = ggen("market", command, "--project", str(project))
        assert result.exit_code == 0, result.output
        assert "nothing pinned" in result.stdout
        assert "ggen.lock does not exist" in result.stdout
        as_json = ggen("market", command, "--project", str(project), "--json")
        assert json.loads(as_json.stdout)["nothing_pinned"] is True
    assert list(project.iterdir()) == []  # no .ggen/.lock left behind


def test_verify_outside_a_project_says_so(project: Path) -> None:
    result = ggen("market", "verify", "--project", str(project))
    assert result.exit_code == 1
    assert "not a ggen project" in result.stderr
    as_json = ggen("market", "verify", "--project", str(project), "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["kind"] == "LockfileError"


def test_index_of_a_gpack_directory_itself_is_refused(tmp_path: Path) -> None:
    pack = write_gpack(tmp_path, "io.example.single", "1.0.0")
    before = tree_state(pack)
    result = ggen("market", "index", str(pack))
    assert result.exit_code == 1
    assert "is a gpack itself" in result.stderr
    assert f"ggen market index {tmp_path}" in result.stderr
    assert tree_state(pack) == before


def test_index_reports_every_bad_gpack_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_gpack(src, "io.example.good", "1.0.0")
    bad_one = write_gpack(src, "io.example.bad-one", "1.0.0")
    (bad_one / "gpack.toml").write_text('[gpack]\nid = "io.example.bad-one"\nverison = "1"\n')
    write_gpack(src, "io.example.bad-two", "1.0.0", extra='[tempaltes]\npatterns = ["x"]\n')
    (src / "broken.tar.gz").write_bytes(b"not gzip at all")
    out = tmp_path / "out"
    result = ggen("market", "index", str(src), "--output", str(out))
    assert result.exit_code == 1
    assert "3 gpacks cannot be indexed (nothing was written)" in result.stderr
    assert "verison" in result.stderr
    assert "tempaltes" in result.stderr
    assert "broken.tar.gz" in result.stderr
    assert not out.exists()
    in_place = ggen("market", "index", str(src))
    assert in_place.exit_code == 1
    assert not (src / "index.json").exists()
    assert not (src / "archives").exists()
