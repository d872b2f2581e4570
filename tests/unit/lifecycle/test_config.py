"""make.toml loading: every bad input gives one error naming the file, line and likely key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ggen_lifecycle.config import load_project
from ggen_lifecycle.errors import (
    ConfigError,
    UnknownEnvironmentError,
    UnknownPhaseError,
    UnknownWorkspaceError,
)
from ggen_lifecycle.model import STANDARD_PHASES, parse_size

from .helpers import project_from, write_project


def error_of(root: Path, make_toml: str, files: dict[str, str] | None = None) -> ConfigError:
    write_project(root, make_toml, files)
    with pytest.raises(ConfigError) as info:
        load_project(root)
    return info.value


def test_malformed_toml_reports_line_and_column(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[project]\nname = "x"\n\n[lifecycle.build]\ncommand = "make\n')
    assert error.file == tmp_path / "make.toml"
    assert error.line == 5
    assert error.column is not None
    assert "malformed TOML" in str(error)
    assert str(error).startswith(f"{tmp_path / 'make.toml'}:5:")


def test_unknown_key_names_line_and_suggests_the_intended_key(tmp_path: Path) -> None:
    error = error_of(
        tmp_path,
        """
        [project]
        name = "x"

        [lifecycle.build]
        comand = "make"
        """,
    )
    assert error.line == 5
    assert "unknown key 'comand' in [lifecycle.build]; did you mean 'command'?" in str(error)


def test_unknown_top_level_table_is_suggested(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[lifecylce.build]\ncommand = "make"\n')
    assert error.line == 1
    assert "did you mean 'lifecycle'?" in str(error)


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    error = error_of(
        tmp_path,
        """
        [lifecycle.build]
        command = "make"
        timeout = "soon"
        """,
    )
    assert error.line == 3
    assert "key 'timeout' in [lifecycle.build]" in str(error)
    assert "'soon'" in str(error)


def test_command_and_commands_together_is_an_error(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[lifecycle.build]\ncommand = "a"\ncommands = ["b"]\n')
    assert "either 'command' or 'commands'" in str(error)
    assert error.line == 1


def test_phase_without_command_is_an_error_naming_the_phase(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[lifecycle.build]\ndescription = "nothing"\n')
    assert error.phase == "build"
    assert error.line == 1
    assert "phase 'build' has no command" in str(error)


def test_phase_with_only_dependencies_is_a_group(tmp_path: Path) -> None:
    project = project_from(
        tmp_path,
        """
        [lifecycle.lint]
        command = "true"
        [lifecycle.ci]
        depends_on = ["lint"]
        """,
    )
    assert project.declared_phases() == ["lint", "ci"]


def test_missing_workspace_path_is_an_error_with_line(tmp_path: Path) -> None:
    error = error_of(
        tmp_path,
        """
        [workspace.web]
        path = "apps/web"
        """,
    )
    assert error.workspace == "web"
    assert error.line == 2
    assert "'apps/web' does not exist" in str(error)


def test_unknown_phase_dependency_suggests_the_declared_one(tmp_path: Path) -> None:
    error = error_of(
        tmp_path,
        """
        [lifecycle.build]
        command = "true"
        [lifecycle.test]
        command = "true"
        depends_on = [
          "biuld",
        ]
        """,
    )
    assert isinstance(error, UnknownPhaseError)
    assert error.line == 6
    assert "unknown phase 'biuld'; did you mean 'build'?" in str(error)


def test_unknown_workspace_dependency_suggests(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    error = error_of(
        tmp_path,
        """
        [workspace.api]
        path = "a"
        [workspace.web]
        path = "b"
        depends_on = ["api2"]
        """,
    )
    assert isinstance(error, UnknownWorkspaceError)
    assert error.line == 5
    assert "did you mean 'api'?" in str(error)


def test_unknown_hook_name_is_suggested(tmp_path: Path) -> None:
    error = error_of(
        tmp_path,
        """
        [lifecycle.build]
        command = "true"
        [hooks]
        befor_build = ["echo hi"]
        """,
    )
    assert error.line == 4
    assert "did you mean 'before_build'?" in str(error)


def test_hook_entry_that_looks_like_a_misspelt_phase(tmp_path: Path) -> None:
    error = error_of(
        tmp_path,
        """
        [lifecycle.lint]
        command = "true"
        [lifecycle.build]
        command = "true"
        [hooks]
        before_build = ["lnit"]
        """,
    )
    assert "did you mean phase 'lint'?" in str(error)


def test_invalid_cleanroom_policy_is_reported_at_load(tmp_path: Path) -> None:
    error = error_of(
        tmp_path,
        """
        [lifecycle.test]
        command = "true"
        [lifecycle.test.cleanroom]
        enabled = true
        policy = "stirct"
        """,
    )
    assert "invalid cleanroom policy" in str(error)
    assert error.line == 5


def test_unknown_service_is_one_error_naming_the_registered_kinds(tmp_path: Path) -> None:
    error = error_of(
        tmp_path,
        """
        [lifecycle.test]
        command = "true"
        cleanroom = { enabled = true, services = ["redis", "postgress"] }
        """,
    )
    assert str(error).endswith(
        "invalid make.toml: key 'services' in [lifecycle.test.cleanroom]: unknown service kind"
        " 'postgress' (did you mean 'postgres'?): registered kinds are mysql, postgres, redis"
    )
    assert error.file == tmp_path / "make.toml"
    assert error.line == 3


def test_unknown_validation_service_is_rejected(tmp_path: Path) -> None:
    error = error_of(
        tmp_path,
        """
        [lifecycle.test]
        command = "true"
        [validation.production]
        services = ["memcached"]
        """,
    )
    assert "key 'services' in [validation.production]: unknown service kind 'memcached'" in str(
        error
    )
    assert "registered kinds are mysql, postgres, redis" in str(error)
    assert error.line == 4


def test_every_registered_service_kind_is_accepted(tmp_path: Path) -> None:
    project = project_from(
        tmp_path,
        """
        [lifecycle.test]
        command = "true"
        cleanroom = { enabled = true, services = ["postgres", "redis", "mysql"] }
        """,
    )
    assert project.spec.lifecycle["test"].cleanroom.services == ["postgres", "redis", "mysql"]


def test_standard_phases_are_listed_without_declaration(tmp_path: Path) -> None:
    project = project_from(tmp_path, '[lifecycle.package]\ncommand = "true"\n')
    assert project.phases() == ["package", *STANDARD_PHASES]
    with pytest.raises(UnknownPhaseError, match=r"standard phase but has no command"):
        project.require_phase("deploy")
    with pytest.raises(UnknownPhaseError, match=r"did you mean 'package'"):
        project.require_phase("pakage")


def test_environment_overrides_and_ggen_env(tmp_path: Path) -> None:
    project = project_from(
        tmp_path,
        """
        [env]
        LEVEL = "debug"
        PORT = 8000
        [env.production]
        LEVEL = "warn"
        [lifecycle.build]
        command = "true"
        env = { FLAG = true }
        """,
    )
    spec = project.spec.lifecycle["build"]
    assert project.declared_env(None, spec, None) == {
        "LEVEL": "debug",
        "PORT": "8000",
        "FLAG": "true",
    }
    assert project.declared_env(None, spec, "production") == {
        "LEVEL": "warn",
        "PORT": "8000",
        "FLAG": "true",
        "GGEN_ENV": "production",
    }
    with pytest.raises(UnknownEnvironmentError, match=r"did you mean 'production'"):
        project.require_environment("prodution")


def test_workspace_make_toml_takes_precedence(tmp_path: Path) -> None:
    project = project_from(
        tmp_path,
        """
        [env]
        WHO = "root"
        [lifecycle.build]
        command = "echo root"
        """,
        {
            "web/make.toml": """
                [env]
                WHO = "web"
                [lifecycle.build]
                command = "echo web"
                """,
        },
        workspaces=["web", "api"],
    )
    web, web_file = project.phase_spec("build", "web") or (None, None)
    api, _api_file = project.phase_spec("build", "api") or (None, None)
    assert web is not None
    assert web.command == "echo web"
    assert web_file == tmp_path / "web" / "make.toml"
    assert api is not None
    assert api.command == "echo root"
    assert project.declared_env("web", web, None)["WHO"] == "web"
    assert project.declared_env("api", api, None)["WHO"] == "root"


def test_workspace_file_errors_name_that_file(tmp_path: Path) -> None:
    error = error_of(
        tmp_path,
        '[workspace.web]\npath = "web"\n',
        {"web/make.toml": '[lifecycle.build]\ncommand = "x"\ntimout = 3\n'},
    )
    assert error.file == tmp_path / "web" / "make.toml"
    assert error.line == 3
    assert "did you mean 'timeout'?" in str(error)


def test_targets_follow_workspaces_key(tmp_path: Path) -> None:
    project = project_from(
        tmp_path,
        """
        [lifecycle.build]
        command = "true"
        [lifecycle.deploy]
        command = "true"
        workspaces = []
        [lifecycle.docs]
        command = "true"
        workspaces = ["b"]
        """,
        workspaces=["a", "b"],
    )
    assert project.targets("build") == ["a", "b"]
    assert project.targets("deploy") == [None]
    assert project.targets("docs") == ["b"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("500MB", 500_000_000), ("2GiB", 2 * 1024**3), ("1k", 1000), (4096, 4096)],
)
def test_sizes(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


def test_bad_cache_size_is_reported(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[cache]\nmax_size = "lots"\n')
    assert error.line == 2
    assert "'lots' is not a size" in str(error)
    assert str(error).count("'lots'") == 1  # the value is quoted once, not again as "(got ...)"


@pytest.mark.parametrize("value", [f'"{"9" * 400}MB"', "9" * 400, f'"{"9" * 400}"'])
def test_a_cache_size_of_hundreds_of_digits_is_reported(tmp_path: Path, value: str) -> None:
    error = error_of(tmp_path, f"[cache]\nmax_size = {value}\n")
    assert error.line == 2
    assert "below 2**63 bytes" in str(error)


def test_no_make_toml_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no make.toml in"):
        load_project(tmp_path)


def test_several_problems_are_all_listed_in_file_order(tmp_path: Path) -> None:
    error = error_of(
        tmp_path,
        """
        [lifecycle.build]
        comand = "make"
        [lifecycle.test]
        command = "make test"
        parallel = "yes"
        """,
    )
    message = str(error)
    assert error.line == 2
    assert message.index("line 2: unknown key 'comand'") < message.index("line 5: key 'parallel'")
