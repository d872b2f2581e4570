"""load_toml / parse_toml: data, key positions, and one error naming the file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cleanroom.config_errors import TomlSyntaxError, load_toml, parse_toml


def test_a_file_gives_its_data_and_where_each_key_is(tmp_path: Path) -> None:
    path = tmp_path / "make.toml"
    path.write_text('[project]\nname = "x"\n\n[lifecycle.build]\n  command = "make"\n')
    document = load_toml(path)
    assert document.data == {"project": {"name": "x"}, "lifecycle": {"build": {"command": "make"}}}
    assert document.where(("lifecycle", "build", "command")) == f"{path}:5:3"
    assert document.where(("project",)) == f"{path}:1:1"
    assert document.where(("nothing",)) == str(path)


def test_a_syntax_error_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "gpack.toml"
    path.write_text('[gpack]\nid = "x"\nname "y"\n')
    with pytest.raises(TomlSyntaxError) as info:
        load_toml(path)
    error = info.value
    assert (error.path, error.line, error.column) == (path, 3, 6)
    assert str(error).startswith(f"{path}:3:6: not valid TOML: ")
    assert "(at line" not in error.reason  # the position is said once, by the fields
    assert error.at == " (at line 3, column 6)"
    assert error.to_dict()["line"] == 3


def test_an_unclosed_table_at_the_end_points_at_the_last_line() -> None:
    with pytest.raises(TomlSyntaxError) as info:
        parse_toml('a = 1\nb = "', "x.toml")
    assert info.value.line == 2


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a = " + "[" * 5000 + "]" * 5000, "nested too deeply"),
        ("a = " + "9" * 5000, "Exceeds the limit"),
    ],
    ids=["deep-nesting", "huge-integer"],
)
def test_hostile_input_is_a_syntax_error_not_a_crash(text: str, reason: str) -> None:
    with pytest.raises(TomlSyntaxError, match=reason) as info:
        parse_toml(text, "hostile.toml")
    assert info.value.message.startswith("not valid TOML: ")


def test_bytes_that_are_not_utf8_are_named_by_offset(tmp_path: Path) -> None:
    path = tmp_path / "ggen.lock"
    path.write_bytes(b'format = 1\nname = "\xff"\n')
    with pytest.raises(TomlSyntaxError, match=r"not UTF-8 text \(byte 19\)"):
        load_toml(path)


def test_a_missing_file_is_left_to_the_caller(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_toml(tmp_path / "absent.toml")
