"""A ``ggen.lock`` that is not UTF-8 or nested too deeply is one LockfileError in every market
command and a usage error in pytest (never a traceback), an archive name with a control
character is refused before anything is installed, and nothing is installed through a ``.ggen``
(or ``.ggen/packages``) that is a link."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from tests.conftest import ggen_env, run_ggen

from .conftest import ggen, write_gpack

BAD_LOCKS = {
    "not utf-8": b"format = 1\n# \xff\xfe\n[requires]\n",
    "deep": b"format = 1\nx = " + b"[" * 50_000 + b"]" * 50_000 + b"\n",
}
COMMANDS = [
    ("market", "add", "io.ggen.python.project-basics"),
    ("market", "add"),
    ("market", "remove", "io.ggen.python.project-basics"),
    ("market", "update"),
    ("market", "list"),
    ("market", "verify"),
    ("template", "list"),
    ("template", "generate", "io.ggen.python.project-basics", "--dry-run"),
]


@pytest.mark.parametrize("kind", sorted(BAD_LOCKS))
def test_a_bad_lock_is_one_error_in_every_command(kind: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    lock = project / "ggen.lock"
    lock.write_bytes(BAD_LOCKS[kind])
    env = {"GGEN_CACHE_DIR": str(tmp_path / "cache"), "GGEN_CONFIG": str(tmp_path / "none")}
    for command in COMMANDS:
        args = [*command, "--json"] if command[0] == "market" else list(command)
        done = run_ggen(*args, cwd=project, env=ggen_env(**env))
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, (command, done.stderr)
        assert f"{lock}: not " in done.stderr, (command, done.stderr)
        assert "restore it from version control" in done.stderr
        if "--json" in args:
            assert json.loads(done.stdout)["kind"] == "LockfileError"
    assert lock.read_bytes() == BAD_LOCKS[kind]


def test_a_non_utf8_lock_is_a_usage_error_in_pytest(tmp_path: Path) -> None:
    (tmp_path / "ggen.lock").write_bytes(BAD_LOCKS["not utf-8"])
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert "INTERNALERROR" not in output
    assert "cleanroom gpacks:" in output
    assert "not UTF-8 text" in output


def test_an_archive_name_with_a_control_character_is_refused_up_front(
    project: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_gpack(src, "io.web.alpha", "1.0.0")
    registry = tmp_path / "registry"
    assert ggen("market", "index", str(src), "--output", str(registry)).exit_code == 0
    index = json.loads((registry / "index.json").read_text())
    entry = index["packs"]["io.web.alpha"]["versions"]["1.0.0"]
    old = registry / entry["archive"]
    entry["archive"] = entry["archive"].replace(".tar.gz", "\x7f.tar.gz")
    old.rename(registry / entry["archive"])
    (registry / "index.json").write_text(json.dumps(index))
    result = ggen("market", "add", "io.web.alpha", "--registry", str(registry), "--project",
                  str(project))  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "archive" in result.stderr
    assert "control character" in result.stderr
    assert not (project / ".ggen" / "packages").exists()
    assert not (project / "ggen.lock").exists()


def test_the_lock_writer_escapes_control_characters() -> None:
    """Even a source URL with DEL or a newline gives a lock that reads back."""
    from ggen_market.lockfile import LockedPackage, Lockfile

    odd = "http://x/\x7f\n\t\x01"
    lock = Lockfile(
        requires={"io.a.b": "*"},
        packages={"io.a.b": LockedPackage("io.a.b", "1.0.0", odd, f"a{odd}", "0" * 64, "0" * 64)},
    )
    parsed = tomllib.loads(lock.render())
    assert parsed["package"][0]["source"] == odd
    assert parsed["package"][0]["archive"] == f"a{odd}"


@pytest.mark.parametrize("link", [".ggen", ".ggen/packages"])
def test_nothing_is_installed_through_a_linked_state_directory(
    link: str, project: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_gpack(src, "io.web.alpha", "1.0.0")
    registry = tmp_path / "registry"
    assert ggen("market", "index", str(src), "--output", str(registry)).exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (project / link).parent.mkdir(parents=True, exist_ok=True)
    (project / link).symlink_to(elsewhere)
    result = ggen("market", "add", "io.web.alpha", "--registry", str(registry), "--project",
                  str(project))  # fmt: skip
    assert result.exit_code == 1, result.output
    assert f"{project / link} is a link" in result.stderr
    assert list(elsewhere.iterdir()) == []
    assert not (project / "ggen.lock").exists()
