"""A scenario file cannot make collection explode or crash: a [matrix] past the variant cap, a
number of thousands of digits and deep nesting are each one ScenarioFileError."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cleanroom.scenarios.files import MAX_VARIANTS, ScenarioFileError, load_scenario_file

STEPS = '[scenario]\nname = "m"\n\n[[steps]]\nname = "s"\nrun = "true"\n'


def _matrix(tmp_path: Path, keys: int, values: int) -> Path:
    row = "[" + ", ".join(str(v) for v in range(values)) + "]"
    matrix = "".join(f"k{k} = {row}\n" for k in range(keys))
    path = tmp_path / "m.scenario.toml"
    path.write_text(f"{STEPS}\n[matrix]\n{matrix}")
    return path


def test_a_matrix_of_ten_million_variants_is_refused_up_front(tmp_path: Path) -> None:
    path = _matrix(tmp_path, keys=7, values=10)
    assert len(path.read_bytes()) < 400
    with pytest.raises(ScenarioFileError, match="expands to 10000000 variants, over the limit"):
        load_scenario_file(path)


def test_the_variant_cap_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _matrix(tmp_path, keys=2, values=40)  # 1600 variants
    with pytest.raises(ScenarioFileError, match=f"over the limit of {MAX_VARIANTS}"):
        load_scenario_file(path)
    monkeypatch.setenv("CLEANROOM_MAX_VARIANTS", "2000")
    assert len(load_scenario_file(path)) == 1600


@pytest.mark.parametrize(
    "extra",
    [f"[scenario.env]\nN = {'9' * 5000}\n", "[scenario.env]\nN = " + "[" * 5000 + "]" * 5000],
    ids=["5000 digits", "deep nesting"],
)
def test_unreadable_numbers_and_nesting_are_scenario_errors(tmp_path: Path, extra: str) -> None:
    path = tmp_path / "x.scenario.toml"
    path.write_text(f"{STEPS}\n{extra}\n")
    with pytest.raises(ScenarioFileError, match="invalid TOML"):
        load_scenario_file(path)
