"""The fast path's JSON and sha256 without json/hashlib give byte for byte what those give."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest

from ggen_lifecycle import _digest, _jsonc
from ggen_lifecycle.files import sha256_file

VALUES: list[Any] = [
    {"b": [1, 2.5, None, True, False, 'é\n"\\', {"x": {}}], "a": -0.0, "c": 1e300, "d": 10**30},
    [],
    {},
    "text \u2603 \ud800",
    1,
    None,
    0.1,
    {"z": 1, "a": [math.inf, -math.inf], "m": {"deep": [[[]], [{}]]}},
    {"record": {"run_id": "x", "phases": ["build"], "start": 1796628369.7901752, "tasks": 4}},
]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("sort_keys", [False, True])
def test_dumps_and_loads_are_jsons(value: Any, sort_keys: bool) -> None:
    text = _jsonc.dumps(value, sort_keys=sort_keys)
    assert text == json.dumps(value, sort_keys=sort_keys)
    assert repr(_jsonc.loads(f" \n{text}\t\r\n")) == repr(json.loads(text))


@pytest.mark.parametrize("value", [*VALUES, {"path": Path("/x"), "set": {1}}, {1: {"a": [1]}}])
def test_the_indented_report_is_jsons(value: Any) -> None:
    assert _jsonc.dumps_indented(value) == json.dumps(value, indent=2, default=str)


@pytest.mark.parametrize("text", ["", " ", "{", "[1,]", "1 2", "nul", '{"a": 1}x', "\x00", "[1"])
def test_what_json_refuses_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"Expecting|Extra data|Unterminated"):
        json.loads(text)
    with pytest.raises(ValueError, match=r"Expecting|Extra data|Unterminated"):
        _jsonc.loads(text)


def test_what_json_cannot_write_is_refused() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        _jsonc.dumps({"a": object()})


@pytest.mark.parametrize("size", [0, 1, _digest.LARGE - 1, _digest.LARGE, _digest.LARGE * 2 + 7])
def test_digests_are_hashlibs_on_either_side_of_the_openssl_threshold(
    tmp_path: Path, size: int
) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    expected = hashlib.sha256(data).hexdigest()
    assert _digest.sha256(data).hexdigest() == expected
    h = _digest.for_size(size)
    h.update(data)
    assert h.hexdigest() == expected
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == expected
