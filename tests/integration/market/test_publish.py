"""``ggen market publish``, validation statements in the index, ``add --require-validated``.

Break tests: every forged, misplaced or untrusted statement is refused with nothing written.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytest_cleanroom.attest.cli import attest
from tests.integration.engine.conftest import require_backend

from .conftest import REPO, ggen, tree_state, write_gpack

pytestmark = pytest.mark.integration

PACK = "io.test.signed"


@pytest.fixture(autouse=True)
def _bwrap() -> None:
    require_backend("bwrap")


def keygen(path: Path) -> Path:
    result = CliRunner().invoke(attest, ["keygen", str(path)])
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture
def key(tmp_path: Path) -> Path:
    return keygen(tmp_path / "team.pem")


@pytest.fixture
def registry(tmp_path: Path, key: Path, env: dict[str, str]) -> Path:
    """A registry with io.test.signed 1.0.0 and 2.0.0, both published (validated, signed)."""
    reg = tmp_path / "registry"
    for version in ("1.0.0", "2.0.0"):
        src = write_gpack(tmp_path / "src", PACK, version, files={"rdf/g.ttl": f"# {version}\n"})
        result = ggen("market", "publish", str(src), "--registry", str(reg),
                      "--signing-key", str(key))  # fmt: skip
        assert result.exit_code == 0, result.output
    return reg


def project_trusting(tmp_path: Path, registry: Path, *keys: Path, required: bool = True) -> Path:
    project = tmp_path / "project"
    project.mkdir(parents=True, exist_ok=True)
    listed = ", ".join(f'"{k}.pub"' for k in keys)
    (project / "ggen.toml").write_text(
        f"[market]\nuse_embedded = false\nrequire_validated = {str(required).lower()}\n"
        f'trusted_keys = [{listed}]\n\n[[market.registries]]\nurl = "{registry}"\n'
    )
    return project


def index_of(registry: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((registry / "index.json").read_text())  # type: ignore[no-any-return]


def save_index(registry: Path, data: dict) -> None:  # type: ignore[type-arg]
    (registry / "index.json").write_text(json.dumps(data, indent=2))


def version_entry(data: dict, version: str) -> dict:  # type: ignore[type-arg]
    return data["packs"][PACK]["versions"][version]  # type: ignore[no-any-return]


def refused_add(project: Path, *extra: str) -> str:
    before = tree_state(project)
    result = ggen("market", "add", f"{PACK}@2.0.0", "--project", str(project), *extra)
    assert result.exit_code == 1, result.output
    assert tree_state(project) == before  # nothing written: no ggen.lock, no .ggen
    return result.stderr


def test_example_gpacks_publish_and_install_only_when_validated(
    tmp_path: Path, key: Path, env: dict[str, str]
) -> None:
    reg = tmp_path / "registry"
    for name in ("python-project-basics", "python-cli-from-ontology", "cleanroom-smoke"):
        result = ggen("market", "publish", str(REPO / "example_gpacks" / name), "--registry",
                      str(reg), "--signing-key", str(key), "--json")  # fmt: skip
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["published"] is True
    project = project_trusting(tmp_path, reg, key)
    info = ggen("market", "info", "io.ggen.python.cli-from-ontology", "--project", str(project),
                "--json")  # fmt: skip
    [version] = json.loads(info.stdout)["pack"]["versions"]
    assert version["validated"]["validated"] is True
    assert version["validated"]["trusted"] is True
    assert version["validated"]["keyid"] == version["validation"]["signatures"][0]["keyid"]
    add = ggen("market", "add", "io.ggen.python.cli-from-ontology", "--project", str(project))
    assert add.exit_code == 0, add.output  # the dependency is validated too
    assert (project / ".ggen/packages/io.ggen.python.project-basics/1.2.0").is_dir()


def test_publish_refuses_a_failing_pack_and_writes_nothing(
    tmp_path: Path, key: Path, registry: Path
) -> None:
    failing = '[validation]\nsteps = [{ name = "fails", run = "exit 3" }]\n'
    bad = write_gpack(tmp_path / "bad", "io.test.bad", "1.0.0", extra=failing)
    before = tree_state(registry)
    result = ggen("market", "publish", str(bad), "--registry", str(registry),
                  "--signing-key", str(key))  # fmt: skip
    assert result.exit_code == 1
    assert "validation FAILED; nothing published" in result.stderr
    assert tree_state(registry) == before


def test_publish_refuses_other_bytes_for_a_published_version(
    tmp_path: Path, key: Path, registry: Path
) -> None:
    other = write_gpack(tmp_path / "other", PACK, "1.0.0", files={"rdf/g.ttl": "# changed\n"})
    before = tree_state(registry)
    result = ggen("market", "publish", str(other), "--registry", str(registry),
                  "--signing-key", str(key))  # fmt: skip
    assert result.exit_code == 1
    assert "already published with another archive" in result.stderr
    assert tree_state(registry) == before
    ftp = ggen("market", "publish", str(other), "--registry", "ftp://example.invalid/",
               "--signing-key", str(key))  # fmt: skip
    assert ftp.exit_code == 1
    assert "publish writes to a directory (a path or file://) or uploads" in ftp.stderr


def test_index_keeps_statements_of_unchanged_archives(registry: Path) -> None:
    before = index_of(registry)
    result = ggen("market", "index", str(registry))
    assert result.exit_code == 0, result.output
    after = index_of(registry)
    for version in ("1.0.0", "2.0.0"):
        assert (
            version_entry(after, version)["validation"]
            == version_entry(before, version)["validation"]
        )


def test_require_validated_installs_a_validated_version(
    tmp_path: Path, key: Path, registry: Path
) -> None:
    project = project_trusting(tmp_path, registry, key)
    result = ggen("market", "add", f"{PACK}@2.0.0", "--project", str(project))
    assert result.exit_code == 0, result.output
    shutil.rmtree(project / ".ggen")  # a fresh clone: install what the lock pins
    pinned = ggen("market", "add", "--project", str(project))
    assert pinned.exit_code == 0, pinned.output


def test_a_version_without_statement_is_refused(tmp_path: Path, key: Path, registry: Path) -> None:
    data = index_of(registry)
    del version_entry(data, "2.0.0")["validation"]
    save_index(registry, data)
    project = project_trusting(tmp_path, registry, key)
    assert "io.test.signed@2.0.0: no validation statement" in refused_add(project)
    # without the ggen.toml setting, the flag alone asks for it
    open_project = project_trusting(tmp_path / "b", registry, key, required=False)
    assert "no validation statement" in refused_add(open_project, "--require-validated")
    assert ggen("market", "add", f"{PACK}@2.0.0", "--project", str(open_project)).exit_code == 0


def test_an_archive_tampered_after_validation_is_refused(
    tmp_path: Path, key: Path, registry: Path
) -> None:
    """The archive and the index's digest both replaced: the statement names the old digest."""
    forged = write_gpack(tmp_path / "forged", PACK, "2.0.0", files={"rdf/g.ttl": "# evil\n"})
    packed = ggen("market", "pack", str(forged), "-o",
                  str(registry / "archives" / f"{PACK}-2.0.0.tar.gz"), "--json")  # fmt: skip
    data = index_of(registry)
    version_entry(data, "2.0.0")["sha256"] = json.loads(packed.stdout)["sha256"]
    version_entry(data, "2.0.0")["size"] = json.loads(packed.stdout)["size"]
    save_index(registry, data)
    project = project_trusting(tmp_path, registry, key)
    stderr = refused_add(project)
    assert "the archive was changed after validation" in stderr


def test_a_statement_for_another_digest_is_refused(
    tmp_path: Path, key: Path, registry: Path
) -> None:
    data = index_of(registry)
    version_entry(data, "2.0.0")["validation"] = version_entry(data, "1.0.0")["validation"]
    save_index(registry, data)
    project = project_trusting(tmp_path, registry, key)
    assert "it is about io.test.signed@1.0.0" in refused_add(project)


def test_a_statement_signed_by_an_untrusted_key_is_refused(
    tmp_path: Path, key: Path, registry: Path
) -> None:
    stranger = keygen(tmp_path / "stranger.pem")
    project = project_trusting(tmp_path, registry, stranger)
    assert "which is not a trusted key" in refused_add(project)
    info = ggen("market", "info", PACK, "--project", str(project))
    assert "not validated:" in info.stdout


def test_an_edited_statement_payload_is_refused(tmp_path: Path, key: Path, registry: Path) -> None:
    data = index_of(registry)
    envelope = version_entry(data, "2.0.0")["validation"]
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["predicate"]["policy"]["name"] = "locked"  # claim more isolation than it had
    envelope["payload"] = base64.b64encode(
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    ).decode()
    save_index(registry, data)
    project = project_trusting(tmp_path, registry, key)
    assert "does not verify" in refused_add(project)


def test_require_validated_without_trusted_keys_says_how_to_trust_one(
    tmp_path: Path, registry: Path
) -> None:
    project = project_trusting(tmp_path, registry)
    assert "no key is trusted" in refused_add(project)


def test_update_require_validated_keeps_the_project_as_it_was(
    tmp_path: Path, key: Path, registry: Path
) -> None:
    project = project_trusting(tmp_path, registry, key, required=False)
    first = ggen("market", "add", f"{PACK}@^1.0", "--project", str(project))
    assert first.exit_code == 0, first.output
    (project / "ggen.lock").write_text(
        (project / "ggen.lock").read_text().replace('"^1.0"', '">=1.0"')
    )
    data = index_of(registry)
    del version_entry(data, "2.0.0")["validation"]
    save_index(registry, data)
    before = tree_state(project)
    result = ggen("market", "update", "--project", str(project), "--require-validated")
    assert result.exit_code == 1
    assert "io.test.signed@2.0.0: no validation statement" in result.stderr
    assert tree_state(project) == before
    moved = ggen("market", "update", "--project", str(project))  # not required: it moves
    assert moved.exit_code == 0, moved.output
    assert "+ io.test.signed@2.0.0" in moved.stdout
