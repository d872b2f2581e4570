"""problems_of / format_validation_error: a pydantic error as the key, its line and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from pytest_cleanroom.config_errors import (
    KeyLines,
    LazyModel,
    format_validation_error,
    parse_toml,
    problems_of,
)
from pytest_cleanroom.config_errors.pydantic_errors import clean_loc, model_at


class Phase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: str
    timeout: int | None = None


class Lazy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patterns: list[str] = []


class File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lifecycle: dict[str, Phase] = {}
    steps: list[Phase] = []
    extra: Annotated[Any, BeforeValidator(LazyModel(__name__, "Lazy"))] = None


def problems(text: str) -> list[Any]:
    data = parse_toml(text)
    with pytest.raises(ValidationError) as info:
        File.model_validate(data)
    return problems_of(info.value, File, data=data, positions=KeyLines(text))


def test_an_unknown_key_is_named_with_its_table_line_and_closest_known_key() -> None:
    (problem,) = problems('[lifecycle.build]\ncommand = "make"\ncomand = "x"\n')
    assert (problem.kind, problem.line, problem.column) == ("unknown", 3, 1)
    assert problem.suggestion == "command"
    expected = "unknown key 'comand' in [lifecycle.build]; did you mean 'command'?"
    assert problem.describe() == expected


def test_a_missing_key_is_found_at_its_table() -> None:
    (problem,) = problems("[[steps]]\ntimeout = 3\n")
    assert (problem.kind, problem.dotted, problem.line) == ("missing", "steps[0].command", 1)
    assert problem.describe() == "[steps.0] is missing the required key 'command'"


def test_a_wrong_type_names_the_key_and_the_value_without_union_branch_names() -> None:
    (problem,) = problems('[[steps]]\ncommand = "x"\ntimeout = "soon"\n')
    assert problem.kind == "invalid"
    assert problem.loc == ("steps", 0, "timeout")  # not ("steps", 0, "timeout", "int")
    assert problem.line == 3
    assert problem.describe().startswith("key 'timeout' in [steps.0]: Input should be")
    assert problem.describe().endswith("(got 'soon')")


def test_a_lazily_imported_model_still_gives_its_keys_for_suggestions() -> None:
    assert model_at(File, ("extra",)) is Lazy
    (problem,) = problems("[extra]\npaterns = []\n")
    assert problem.suggestion == "patterns"


def test_branch_names_are_dropped_but_a_missing_last_key_is_kept() -> None:
    data = {"a": {"b": 1}}
    assert clean_loc(("a", "SomeModel", "b"), data) == (("a", "b"), ("a", "b"))
    assert clean_loc(("a", "c"), data) == (("a", "c"), ("a",))
    assert clean_loc(("a", "list[str]", 0)) == (("a", 0), ("a", 0))


def test_one_message_lists_every_problem_by_line_and_gives_the_first_line(tmp_path: Path) -> None:
    text = '[lifecycle.build]\ncomand = "x"\n\n[[steps]]\ncommand = "y"\ntimeout = "z"\n'
    data = parse_toml(text)
    with pytest.raises(ValidationError) as info:
        File.model_validate(data)
    message, line = format_validation_error(
        info.value, File, path=tmp_path / "make.toml", data=data, positions=KeyLines(text)
    )
    assert line == 1
    lines = message.splitlines()
    assert lines[0] == "invalid make.toml:"
    assert lines[1] == "  line 1: [lifecycle.build] is missing the required key 'command'"
    assert lines[2] == (
        "  line 2: unknown key 'comand' in [lifecycle.build]; did you mean 'command'?"
    )
    assert lines[3].startswith("  line 6: key 'timeout' in [steps.0]: Input should be")
