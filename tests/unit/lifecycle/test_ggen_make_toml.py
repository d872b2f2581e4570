"""make.toml files written for ggen load and run: its keys, with their meaning, in one pass."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from ggen_lifecycle.config import load_project
from ggen_lifecycle.errors import ConfigError, UnknownPhaseError
from ggen_lifecycle.reporter import Reporter
from ggen_lifecycle.runner import Runner, RunOptions, RunSummary
from tests.unit.lifecycle.helpers import write_project

GGEN_STYLE = """
[project]
name = "shop"
type = "webapp"
author = "someone"            # not a key of this format: ignored with a warning

[workspace.web]
path = "web"
package_manager = "npm"
description = "the front end"

[lifecycle.dev]
description = "dev server"
command = "echo serving on $PORT"
watch = true
port = 3517

[lifecycle.build]
commands = ["echo build", "echo built > out.txt"]
outputs = ["out.txt", "dist/never.txt"]
post = ["echo post-build"]
first_run_only = true          # ggen ignores this key; so does this format, with a warning

[hooks]
before_all = ["echo start"]
on_success = "echo all good"

[execution]                    # a table of another tool: ignored with a warning
parallel = true
"""


def run(root: Path, phases: list[str], **options: object) -> tuple[RunSummary, str]:
    stream = io.BytesIO()
    runner = Runner(load_project(root), RunOptions(**options), Reporter(stream))  # type: ignore[arg-type]
    summary = runner.run(phases)
    return summary, stream.getvalue().decode()


def test_a_ggen_file_loads_with_foreign_keys_ignored_and_named(tmp_path: Path) -> None:
    write_project(tmp_path, GGEN_STYLE, {"web/package.json": "{}"})
    project = load_project(tmp_path)
    assert project.spec.lifecycle["dev"].watch is True
    assert project.spec.lifecycle["dev"].port == 3517
    assert project.spec.workspace["web"].package_manager == "npm"
    assert [w.split(": ", 1)[1] for w in project.warnings] == [
        "unknown key 'author' in [project] ignored (not a key of this make.toml format)",
        "unknown key 'first_run_only' in [lifecycle.build] ignored (not a key of this make.toml"
        " format)",
        "unknown key 'execution' in the top level ignored (not a key of this make.toml format)",
    ]
    assert project.warnings[0].startswith("make.toml:4:")


def test_a_misspelt_key_is_still_an_error(tmp_path: Path) -> None:
    write_project(tmp_path, '[lifecycle.build]\ncomand = "make"\ntimout = 5\n')
    with pytest.raises(ConfigError) as caught:
        load_project(tmp_path)
    message = str(caught.value)
    assert "unknown key 'comand' in [lifecycle.build]; did you mean 'command'?" in message
    assert "unknown key 'timout' in [lifecycle.build]; did you mean 'timeout'?" in message


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        """
        [lifecycle.build]
        command = "make"
        depends_on = ["lnit"]
        [lifecycle.lint]
        description = "no command"
        [hooks]
        before_tset = ["echo"]
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_project(tmp_path)
    message = str(caught.value)
    assert "3 problems:" in message
    assert "depends on unknown phase 'lnit'; did you mean 'lint'?" in message
    assert "phase 'lint' has no command" in message
    assert "unknown hook 'before_tset'" in message


def test_env_tables_give_variables_and_per_environment_commands(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        """
        [env]
        LEVEL = "debug"
        [env.production]
        LEVEL = "warn"
        commands.build = "echo release build with $LEVEL > how.txt"

        [lifecycle.build]
        command = "echo debug build with $LEVEL > how.txt"
        [lifecycle.build.env.production]
        EXTRA = "yes"
        """,
    )
    summary, _ = run(tmp_path, ["build"])
    assert summary.status == "success"
    assert (tmp_path / "how.txt").read_text() == "debug build with debug\n"
    summary, _ = run(tmp_path, ["build"], environment="production")
    assert summary.status == "success"
    assert (tmp_path / "how.txt").read_text() == "release build with warn\n"
    project = load_project(tmp_path)
    spec = project.spec.lifecycle["build"]
    assert project.declared_env(None, spec, "production")["EXTRA"] == "yes"
    assert "EXTRA" not in project.declared_env(None, spec, None)


@pytest.mark.parametrize(
    ("table", "fix"),
    [
        ('[env.production]\nDB = ["a", "b"]\n', "[env.production] DB: a list is not a variable"),
        ("[env.production.db]\nurl = 'x'\n", "[env.production] db: a table here is only allowed"),
    ],
)
def test_a_wrong_env_value_is_named_with_its_table(tmp_path: Path, table: str, fix: str) -> None:
    write_project(tmp_path, table + '[lifecycle.build]\ncommand = "true"\n')
    with pytest.raises(ConfigError, match=re_escape(fix)):
        load_project(tmp_path)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_post_entries_run_after_the_phase_and_on_success_at_the_end(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        """
        [lifecycle.build]
        command = "echo build >> log.txt"
        post = ["echo post >> log.txt"]
        [hooks]
        on_success = "echo success >> log.txt"
        on_error = "echo error >> log.txt"
        """,
    )
    summary, _ = run(tmp_path, ["build"])
    assert summary.status == "success"
    assert (tmp_path / "log.txt").read_text() == "build\npost\nsuccess\n"


def test_missing_outputs_are_a_warning_by_default_and_an_error_with_the_setting(
    tmp_path: Path,
) -> None:
    text = '[lifecycle.build]\ncommand = "echo only-log"\noutputs = ["dist/app.bin"]\n'
    write_project(tmp_path / "a", text)
    summary, _ = run(tmp_path / "a", ["build"])
    assert summary.status == "success"
    assert any("declared outputs were not produced: dist/app.bin" in w for w in summary.warnings)
    write_project(tmp_path / "b", text + '[cache]\nmissing_outputs = "error"\n')
    summary, _ = run(tmp_path / "b", ["build"])
    assert summary.status == "failed"
    assert "declared outputs were not produced: dist/app.bin" in (summary.results[0].error or "")


def test_package_manager_is_exported_and_gives_standard_phases_defaults(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        """
        [workspace.api]
        path = "api"
        package_manager = "go"
        [lifecycle.info]
        command = "echo $GGEN_PACKAGE_MANAGER > pm.txt"
        """,
    )
    (tmp_path / "api").mkdir()
    summary, _ = run(tmp_path, ["info"])
    assert summary.status == "success"
    assert (tmp_path / "api" / "pm.txt").read_text() == "go\n"
    project = load_project(tmp_path)
    project.require_phase("test")  # not declared: go's default
    found = project.phase_spec("test", "api")
    assert found is not None
    assert found[0].command_list() == ["go test ./..."]
    with pytest.raises(UnknownPhaseError):
        project.require_phase("deploy")  # go has no default for it


def test_port_is_exported_and_must_be_free(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        write_project(
            tmp_path,
            f'[lifecycle.dev]\ncommand = "echo $PORT $GGEN_PORT > port.txt"\nport = {port}\n',
        )
        listener.listen()
        summary, _ = run(tmp_path, ["dev"])
        assert summary.status == "failed"
        assert f"port {port} is in use" in (summary.results[0].error or "")
        assert not (tmp_path / "port.txt").exists()
    summary, _ = run(tmp_path, ["dev"])
    assert summary.status == "success"
    assert (tmp_path / "port.txt").read_text() == f"{port} {port}\n"
