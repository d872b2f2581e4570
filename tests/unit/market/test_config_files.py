"""ggen.toml and ggen.lock: a malformed file, an unknown key and a wrong type are each one
error naming the file, the place and the fix (the toolkit's TOML reading and suggestions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ggen_market.config import ConfigError, load_config
from ggen_market.errors import LockfileError
from ggen_market.lockfile import LockedPackage, Lockfile, read_lock


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GGEN_CONFIG", str(tmp_path / "no-user-config.toml"))
    monkeypatch.delenv("GGEN_REGISTRY_URL", raising=False)
    root = tmp_path / "project"
    root.mkdir()
    return root


def config_error(project: Path, text: str) -> str:
    (project / "ggen.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(project)
    return str(info.value)


def test_ggen_toml_that_is_not_toml_names_the_line_and_column(project: Path) -> None:
    message = config_error(project, "[market]\nuse_embedded = \n")
    assert message.startswith(f"{project / 'ggen.toml'}: not valid TOML: ")
    assert message.endswith("(at line 2, column 16)")


def test_an_unknown_market_key_suggests_the_known_one(project: Path) -> None:
    message = config_error(project, "[market]\ntimout = 3\n")
    assert message == (
        f"{project / 'ggen.toml'}: [market] timout: unknown key (did you mean 'timeout'?)"
    )


def test_an_unknown_registry_key_names_the_entry(project: Path) -> None:
    message = config_error(
        project, '[[market.registries]]\nurl = "x"\n\n[[market.registries]]\nrefs = "main"\n'
    )
    assert message == (
        f"{project / 'ggen.toml'}: [[market.registries]] #2: refs: unknown key"
        " (did you mean 'ref'?)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('market = "x"\n', "[market] must be a table"),
        (
            '[market]\nrequire_validated = "yes"\n',
            "[market] require_validated: expected true or false",
        ),
        ("[market]\nregistries = 3\n", "[[market.registries]] must be an array of tables"),
    ],
)
def test_a_wrong_type_in_ggen_toml_names_the_key(project: Path, text: str, expected: str) -> None:
    assert config_error(project, text) == f"{project / 'ggen.toml'}: {expected}"


def valid_lock() -> str:
    package = LockedPackage(
        id="io.test.x",
        version="1.0.0",
        source="embedded",
        archive="x-1.0.0.tar.gz",
        sha256="0" * 64,
        tree_sha256="1" * 64,
    )
    return Lockfile({"io.test.x": "^1"}, {"io.test.x": package}).render()


def lock_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "ggen.lock"
    path.write_text(text)
    with pytest.raises(LockfileError) as info:
        read_lock(path)
    return str(info.value)


def test_a_valid_lock_reads_back(tmp_path: Path) -> None:
    (tmp_path / "ggen.lock").write_text(valid_lock())
    lock = read_lock(tmp_path / "ggen.lock")
    assert lock is not None
    assert lock.packages["io.test.x"].version == "1.0.0"


def test_a_lock_that_is_not_toml_names_the_position_and_the_fix(tmp_path: Path) -> None:
    message = lock_error(tmp_path, valid_lock().replace("[[package]]", "[[package]"))
    assert message.startswith(f"{tmp_path / 'ggen.lock'}: not valid TOML (")
    assert "(at line" in message
    assert message.endswith("; restore it from version control")


def test_an_unknown_key_of_a_locked_package_suggests_the_known_one(tmp_path: Path) -> None:
    message = lock_error(tmp_path, valid_lock().replace("tree_sha256 =", "tree_sha265 ="))
    assert message == (
        f"{tmp_path / 'ggen.lock'}: [[package]] #1: tree_sha265: unknown key"
        " (did you mean 'tree_sha256'?)"
    )


def test_a_wrong_type_in_the_lock_names_the_key(tmp_path: Path) -> None:
    message = lock_error(tmp_path, valid_lock().replace('version = "1.0.0"', "version = 1"))
    assert message == f"{tmp_path / 'ggen.lock'}: [[package]] #1: version: missing or not a string"
