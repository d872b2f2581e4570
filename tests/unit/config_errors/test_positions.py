"""KeyLines: the line and column of a key path in TOML text, as pydantic names the path."""

from __future__ import annotations

from pytest_cleanroom.config_errors.positions import KeyLines, locate_value, toml_string

TEXT = """\
# a comment
[gpack]
id = "io.x"
notes = \"\"\"
[not-a-table]
fake = 1
\"\"\"

[[steps]]
name = "a"

[[steps]]
  name = "b"
  env.HOME = "/h"
"quoted key" = 1
list = [
  "one",
  "two",
]
"""


def test_tables_keys_and_array_entries_have_their_line_and_column() -> None:
    where = KeyLines(TEXT)
    assert where.position(("gpack", "id")) == (3, 1)
    assert where.position(("steps", 0, "name")) == (10, 1)
    assert where.position(("steps", 1, "name")) == (13, 3)
    assert where.position(("steps", 1, "env", "HOME")) == (14, 3)
    assert where.position(("steps", 1, "quoted key")) == (15, 1)


def test_text_inside_a_multiline_string_is_not_a_key() -> None:
    assert KeyLines(TEXT).locate(("not-a-table",)) is None


def test_a_missing_key_points_at_its_table_and_nothing_at_all_at_line_one() -> None:
    where = KeyLines(TEXT)
    assert where.locate(("steps", 1, "run")) == 12
    assert where.locate(("nowhere",)) is None
    assert where.line(("nowhere",)) == 1


def test_a_value_on_its_own_line_of_an_array_is_found() -> None:
    assert locate_value(TEXT, ("steps", 1, "list"), "two") == 18


def test_toml_strings_escape_what_toml_forbids_raw() -> None:
    assert toml_string('say "hi"\\\n') == '"say \\"hi\\"\\\\\\u000a"'
