"""gpack.toml and scenario files: strict models whose errors name the file, key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from ggen_market.builder import check_gpack
from ggen_market.errors import ManifestError
from ggen_market.manifest import load_manifest
from ggen_market.testpack import load_scenario

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted(p for p in (REPO / "example_gpacks").iterdir() if p.is_dir())

BASE = '[gpack]\nid = "io.test.x"\nname = "x"\nversion = "1.0.0"\n'


def manifest_at(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gpack.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("gpack", EXAMPLES, ids=lambda p: p.name)
def test_example_gpacks_are_valid(gpack: Path) -> None:
    manifest = check_gpack(gpack, deep=True)
    assert manifest.id.startswith("io.ggen.")


def test_at_least_three_examples_including_a_test_gpack() -> None:
    manifests = [load_manifest(p) for p in EXAMPLES]
    assert len(manifests) >= 3
    assert any(m.is_test_pack and m.scenarios for m in manifests)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            BASE.replace("version", "verison"),
            "[gpack] verison: unknown key (did you mean 'version'?)",
        ),
        (
            BASE + "\n[tempaltes]\npatterns = []\n",
            "[tempaltes]: unknown table (did you mean 'templates'?)",
        ),
        (
            BASE.replace('"1.0.0"', '"1.0"'),
            "[gpack] version: version '1.0' is not a semantic version",
        ),
        (BASE.replace("io.test.x", "IoTest"), "[gpack] id: 'IoTest' is not a reverse-DNS id"),
        (BASE + '\n[dependencies]\n"io.test.y" = "^^1"\n', "[dependencies]: range of 'io.test.y'"),
        (BASE + '\n[dependencies]\n"y" = "^1"\n', "'y' is not a reverse-DNS id"),
        (BASE + '\n[templates]\npatterns = ["../x/*"]\n', "must be relative to the gpack"),
        (BASE + '\n[templates]\npatterns = ["/etc/*"]\n', "must be relative to the gpack"),
        (BASE + '\n[cleanroom]\npolicy = "strikt"\n', "[cleanroom] policy"),
        (BASE + '\n[cleanroom]\nservice = ["redis"]\n', "did you mean 'services'?"),
        (BASE + "\n[scenarios]\npaterns = []\n", "did you mean 'patterns'?"),
        # The test sections are validated by models built only when present: same messages.
        (
            BASE + "\n[fixtures]\npatern = []\n",
            "[fixtures] patern: unknown key (did you mean 'patterns'?)",
        ),
        (
            BASE + "\n[cleanroom]\ntimeout = 0\n",
            "[cleanroom] timeout: Input should be greater than 0",
        ),
        (
            BASE + '\n[cleanroom]\nbackend = "vm"\n',
            "[cleanroom] backend: Input should be 'auto', 'local' or 'docker'",
        ),
        ("cleanroom = 5\n" + BASE, "[cleanroom]: Input should be a valid dictionary"),
        (
            BASE + '\n[scenarios]\npatterns = ["../x"]\n',
            "[scenarios] patterns: pattern '../x' must",
        ),
        (BASE + "\n[cleanrom]\n", "[cleanrom]: unknown table (did you mean 'cleanroom'?)"),
        (BASE.replace('name = "x"\n', ""), "[gpack] name: required key missing"),
        ('[gpack\nid = "x"', "not valid TOML"),
    ],
)
def test_manifest_errors_name_the_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = manifest_at(tmp_path, text)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_problems_in_core_and_test_sections_are_listed_together(tmp_path: Path) -> None:
    text = BASE.replace("version =", "verison =") + '\n[cleanroom]\nservice = ["redis"]\n'
    path = manifest_at(tmp_path, text)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert str(info.value) == (
        f"{path}: 3 problems:\n"
        "  line 1: [gpack] version: required key missing\n"
        "  line 4: [gpack] verison: unknown key (did you mean 'version'?)\n"
        "  line 7: [cleanroom] service: unknown key (did you mean 'services'?)"
    )


def test_test_sections_are_parsed(tmp_path: Path) -> None:
    path = manifest_at(
        tmp_path,
        BASE + '\n[cleanroom]\npolicy = "locked"\nservices = ["postgres"]\n\n[scenarios]\n',
    )
    manifest = load_manifest(path)
    assert manifest.is_test_pack
    assert manifest.cleanroom is not None
    assert manifest.cleanroom.policy == "locked"
    assert manifest.scenarios is not None
    assert manifest.scenarios.patterns == [
        "scenarios/**/*.scenario.toml",
        "scenarios/**/*.scenario.yaml",
        "scenarios/**/*.scenario.yml",
    ]


SCENARIO = """
[scenario]
name = "s"
policy = "strict"
timeout = 10

[[steps]]
name = "one"
run = ["echo", "hi"]
expect_stdout = "hi"

[[rollback]]
name = "undo"
run = "true"
"""


def test_scenario_file_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "a.scenario.toml"
    path.write_text(SCENARIO)
    [variant] = load_scenario(path)
    assert variant.scenario.name == "s"
    assert [step.name for step in variant.scenario.rollback_steps] == ["undo"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("expect_stdout", "expect_stout"),
            ":10: unknown key 'steps[0].expect_stout'; did you mean 'expect_stdout'?",
        ),
        (('run = ["echo", "hi"]', "run = []"), ":9: steps[0].run"),
        (('policy = "strict"', 'policy = "lax"'), ":4: unknown cleanroom policy 'lax'"),
        (("[[steps]]", "[[stepz]]"), ":7: unknown key 'stepz'; did you mean 'steps'?"),
    ],
)
def test_scenario_errors(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    path = tmp_path / "bad.scenario.toml"
    path.write_text(SCENARIO.replace(*change))
    with pytest.raises(ManifestError) as info:
        load_scenario(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_bad_scenario_fails_the_gpack_check(tmp_path: Path) -> None:
    root = tmp_path / "g"
    (root / "scenarios").mkdir(parents=True)
    (root / "gpack.toml").write_text(BASE + "\n[scenarios]\n")
    (root / "scenarios" / "x.scenario.toml").write_text("[scenario]\nname = 'x'\n")
    expected = r"x\.scenario\.toml:1: missing required key 'steps'"
    with pytest.raises(ManifestError, match=expected):
        check_gpack(root)
