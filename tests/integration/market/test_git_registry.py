"""A registry published in a real git repository, cloned with the `git` command at a ref."""

from __future__ import annotations

import shutil
from pathlib import Path

from ggen_market.lockfile import read_lock

from .conftest import ggen, git, write_gpack


def commit_all(repo: Path, message: str) -> str:
    git("add", "-A", cwd=repo)
    git("commit", "--quiet", "-m", message, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo)


def test_git_registry_at_tag_and_branch(git_repo: Path, project: Path, tmp_path: Path) -> None:
    # v1: gpack sources only (indexed on the fly from the checkout).
    write_gpack(git_repo, "io.git.lib", "1.0.0", files={"templates/x.tmpl": "---\nto: x\n---\n1\n"})
    first = commit_all(git_repo, "lib 1.0.0")
    git("tag", "v1", cwd=git_repo)
    # main moves on: a new version with a prebuilt index.json.
    write_gpack(git_repo, "io.git.lib", "1.1.0")
    built = ggen("market", "index", str(git_repo))
    assert built.exit_code == 0, built.output
    second = commit_all(git_repo, "lib 1.1.0 + index")

    at_tag = f"git+{git_repo.as_uri()}#v1"
    result = ggen("market", "add", "io.git.lib", "--registry", at_tag, "--project", str(project))
    assert result.exit_code == 0, result.output
    lock = read_lock(project / "ggen.lock")
    assert lock is not None
    pkg = lock.packages["io.git.lib"]
    assert pkg.version == "1.0.0"
    assert pkg.source == f"git+{git_repo.as_uri()}#{first}"  # pinned to the commit

    on_main = f"git+{git_repo.as_uri()}#main"
    info = ggen("market", "info", "io.git.lib", "--registry", on_main, "--project", str(project))
    assert info.exit_code == 0, info.output
    assert "1.1.0" in info.stdout

    # A fresh checkout of the project installs from the pinned commit even though the tag's
    # repository moved on and the clone cache is gone.
    shutil.rmtree(Path(__import__("os").environ["GGEN_CACHE_DIR"]))
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "ggen.lock").write_bytes((project / "ggen.lock").read_bytes())
    again = ggen("market", "add", "--project", str(clone))
    assert again.exit_code == 0, again.output
    assert (clone / ".ggen/packages/io.git.lib/1.0.0/templates/x.tmpl").read_text().endswith("1\n")
    assert second != first


def test_git_registry_unknown_ref_and_bad_url(git_repo: Path, project: Path) -> None:
    write_gpack(git_repo, "io.git.lib", "1.0.0")
    commit_all(git_repo, "lib")
    spec = f"git+{git_repo.as_uri()}#no-such-branch"
    result = ggen("market", "search", "lib", "--registry", spec, "--project", str(project))
    assert result.exit_code == 1
    assert "no branch, tag or commit named 'no-such-branch'" in result.stderr
    missing = f"git+{(git_repo.parent / 'nope').as_uri()}"
    result = ggen("market", "search", "lib", "--registry", missing, "--project", str(project))
    assert result.exit_code == 1
    assert "git clone failed" in result.stderr


def test_git_registry_works_offline_from_the_clone(git_repo: Path, project: Path) -> None:
    write_gpack(git_repo, "io.git.lib", "1.0.0")
    commit_all(git_repo, "lib")
    spec = f"git+{git_repo.as_uri()}#main"
    assert (
        ggen("market", "search", "lib", "--registry", spec, "--project", str(project)).exit_code
        == 0
    )
    shutil.rmtree(git_repo)
    result = ggen("market", "search", "lib", "--registry", spec, "--project", str(project))
    assert result.exit_code == 0, result.output
    assert "io.git.lib" in result.stdout
    assert "using the clone made earlier" in result.stderr
