"""The real `ggen` process: embedded registry, generating and running a program, config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ggen_market.testpack import installed_test_packs
from tests.conftest import ggen_env, run_ggen

from .conftest import REPO, ggen, write_gpack


def test_embedded_registry_generates_a_working_program(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    env = {"GGEN_CACHE_DIR": str(tmp_path / "cache"), "GGEN_CONFIG": str(tmp_path / "none")}
    found = run_ggen("market", "search", "cli", "--json", cwd=project, env=ggen_env(**env))
    assert found.returncode == 0, found.stderr
    ids = [r["id"] for r in json.loads(found.stdout)["results"]]
    assert ids[0] == "io.ggen.python.cli-from-ontology"
    assert {r["registry"] for r in json.loads(found.stdout)["results"]} == {"embedded:"}

    added = run_ggen("market", "add", "io.ggen.python.cli-from-ontology", cwd=project,
                     env=ggen_env(**env))  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "+ io.ggen.python.project-basics@1.2.0" in added.stdout  # a dependency

    generated = run_ggen("template", "generate", "io.ggen.python.cli-from-ontology:cli.py",
                         "--var", "program=greet", "--out", "app", "--json", cwd=project,
                         env=ggen_env(**env))  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    assert json.loads(generated.stdout)["files"][0]["path"] == "greet.py"
    program = project / "app" / "greet.py"

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, str(program), *args], capture_output=True,
                              text=True, check=True)  # fmt: skip
        return done.stdout

    assert run("hello", "--name", "Ada") == "Hello, Ada!\n"
    assert run("goodbye") == "Goodbye, friend. See you soon.\n"
    assert run("repeat", "--word", "hi", "--times", "3") == "hi\nhi\nhi\n"
    assert "Greets people" in run("--help")

    # Deterministic: a second run changes nothing, a fresh directory gets the same bytes.
    ref = "io.ggen.python.cli-from-ontology:cli.py"
    again = run_ggen("template", "generate", ref, "--var", "program=greet", "--out", "app2",
                     cwd=project, env=ggen_env(**env))  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert (project / "app2/greet.py").read_bytes() == program.read_bytes()

    listed = run_ggen("template", "list", "--json", cwd=project, env=ggen_env(**env))
    refs = [t["template"] for t in json.loads(listed.stdout)["templates"]]
    assert "io.ggen.python.project-basics:readme" in refs


def test_test_gpack_is_found_through_the_lockfile(project: Path) -> None:
    result = ggen("market", "add", "io.ggen.cleanroom.smoke", "--project", str(project))
    assert result.exit_code == 0, result.output
    packs = installed_test_packs(project)
    assert [p.id for p in packs] == ["io.ggen.cleanroom.smoke"]
    pack = packs[0]
    assert pack.root == project / ".ggen/packages/io.ggen.cleanroom.smoke/0.1.0"
    assert [s.name for s in pack.scenarios] == ["python-toolchain.scenario.toml"]
    assert [f.name for f in pack.fixtures] == ["smoke_fixtures.py"]
    assert pack.cleanroom.policy == "strict"
    listed = ggen("market", "list", "--project", str(project))
    assert "[test gpack]" in listed.stdout


def test_pack_is_reproducible_and_prints_the_digest(tmp_path: Path) -> None:
    src = REPO / "example_gpacks" / "python-project-basics"
    first = run_ggen("market", "pack", str(src), "-o", str(tmp_path / "a.tar.gz"), cwd=tmp_path,
                     env=ggen_env())  # fmt: skip
    second = ggen("market", "pack", str(src), "-o", str(tmp_path / "b.tar.gz"), "--json")
    assert first.returncode == 0, first.stderr
    digest = first.stdout.split()[0]
    assert json.loads(second.stdout)["sha256"] == digest
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()


def test_registry_precedence(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = tmp_path / "team"
    public = tmp_path / "public"
    write_gpack(team, "io.shared.lib", "1.0.0")
    write_gpack(public, "io.shared.lib", "9.0.0")  # a higher version must not shadow the team's
    write_gpack(public, "io.public.only", "1.0.0")
    (project / "ggen.toml").write_text(
        f'[market]\nuse_embedded = false\n\n[[market.registries]]\nname = "team"\nurl = "{team}"\n'
        f'\n[[market.registries]]\nname = "public"\nurl = "{public}"\n'
    )
    data = json.loads(
        ggen("market", "list", "--available", "--project", str(project), "--json").stdout
    )
    versions = {p["id"]: (p["latest"], p["registry"]) for p in data["available"]}
    assert versions["io.shared.lib"] == ("1.0.0", team.as_uri())
    assert "io.public.only" in versions
    assert not any(pid.startswith("io.ggen.") for pid in versions)
    # GGEN_REGISTRY_URL replaces the configuration; --registry replaces both.
    monkeypatch.setenv("GGEN_REGISTRY_URL", str(public))
    data = json.loads(
        ggen("market", "list", "--available", "--project", str(project), "--json").stdout
    )
    assert {p["id"]: p["latest"] for p in data["available"]}["io.shared.lib"] == "9.0.0"
    data = json.loads(ggen("market", "list", "--available", "--project", str(project),
                           "--registry", str(team), "--json").stdout)  # fmt: skip
    assert [p["id"] for p in data["available"]] == ["io.shared.lib"]


def test_config_errors_name_the_key(project: Path) -> None:
    (project / "ggen.toml").write_text('[market]\n[[market.registries]]\nulr = "x"\n')
    result = ggen("market", "search", "x", "--project", str(project), "--json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert "ggen.toml: [[market.registries]] #1: ulr: unknown key (did you mean 'url'?)" in error


def test_every_command_has_json(project: Path) -> None:
    from ggen_market.cli import market, template

    for group in (market, template):
        for name, command in group.commands.items():
            options = {opt for p in command.params for opt in getattr(p, "opts", [])}
            assert "--json" in options, f"{group.name} {name} lacks --json"


def test_cheap_startup_does_not_import_heavy_modules() -> None:
    code = (
        "import sys; from ggen_cli.__main__ import main; import ggen_market.cli;"
        "heavy = [m for m in ('rdflib', 'httpx', 'jinja2', 'yaml', 'pydantic')"
        " if m in sys.modules];"
        "print(','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
