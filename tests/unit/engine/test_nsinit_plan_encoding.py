"""The plan the compiled set-up step reads: every part NUL-terminated, in order, and a NUL
inside a part refused (it would split the part in two and shift every record after it)."""

from __future__ import annotations

import pytest

from pytest_cleanroom.backends._nsinit_native import encode_plan


def test_each_record_is_its_tag_count_and_fields() -> None:
    records = [("argv", ("sh", "-c", "echo hé")), ("cwd", ("/workspace",)), ("nested", ())]
    assert encode_plan(records) == (
        b"argv\x003\x00sh\x00-c\x00echo h\xc3\xa9\x00cwd\x001\x00/workspace\x00nested\x000\x00"
    )
    assert encode_plan([]) == b""


def test_a_file_name_that_is_not_utf8_keeps_its_bytes() -> None:
    name = b"caf\xe9".decode("utf-8", "surrogateescape")  # as os.listdir returns it
    assert encode_plan([("op", ("bind", name))]) == b"op\x002\x00bind\x00caf\xe9\x00"


@pytest.mark.parametrize("where", ["tag", "field"])
def test_a_nul_inside_a_part_is_refused_naming_the_record(where: str) -> None:
    records = [("cwd", ("/workspace",)), ("env", ("A=1", "B=2\0C=3"))]
    if where == "tag":
        records = [("cwd", ("/workspace",)), ("en\0v", ("A=1",))]
    with pytest.raises(ValueError, match="NUL byte in the set-up plan's"):
        encode_plan(records)
