"""``ggen market publish --registry URL``: the client against a real ``ggen market serve``.

The end to end: publish over HTTP (validated in a bubblewrap cleanroom), then ``ggen market add
--require-validated`` from that registry in a fresh project. The rest tries to make the client
leak its token, skip TLS verification, publish what failed, or hide why an upload failed.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ggen_market.config import MarketConfig, RegistrySpec
from ggen_market.hosting.protocol import UploadError
from ggen_market.hosting.upload import HttpTarget
from tests.integration.engine.conftest import require_backend

from .conftest import REPO, HttpRegistry, ggen, tree_state, write_gpack
from .served import TOKEN, Served, archive, keypair, serve, statement

pytestmark = pytest.mark.integration


@pytest.fixture
def team_key(tmp_path: Path) -> Path:
    keypair(tmp_path / "team.pem")
    return tmp_path / "team.pem"


@pytest.fixture
def registry(tmp_path: Path, team_key: Path) -> Iterator[Served]:
    root = tmp_path / "registry"
    root.mkdir()
    with serve(root, "--trusted-key", f"{team_key}.pub") as served:
        yield served


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> str:
    monkeypatch.setenv("GGEN_REGISTRY_TOKEN", TOKEN)
    return TOKEN


def publish(src: Path, url: str, key: Path, *extra: str) -> tuple[int, str, str]:
    result = ggen("market", "publish", str(src), "--registry", url, "--signing-key", str(key),
                  *extra)  # fmt: skip
    return result.exit_code, result.stdout, result.stderr


def test_publish_over_http_then_add_require_validated_in_a_fresh_project(
    tmp_path: Path, registry: Served, team_key: Path, token: str
) -> None:
    require_backend("bwrap")
    for name in ("python-project-basics", "python-cli-from-ontology"):  # the second needs the first
        code, out, err = publish(REPO / "example_gpacks" / name, registry.url, team_key, "--json")
        assert code == 0, out + err
        report = json.loads(out)
        assert (report["published"], report["registry"]) == (True, registry.url)
        assert report["already_published"] is False
        assert token not in out + err
    project = tmp_path / "fresh"
    project.mkdir()
    (project / "ggen.toml").write_text(
        f'[market]\nuse_embedded = false\ntrusted_keys = ["{team_key}.pub"]\n\n'
        f'[[market.registries]]\nname = "team"\nurl = "{registry.url}"\n'
    )
    result = ggen("market", "add", "io.ggen.python.cli-from-ontology", "--require-validated",
                  "--project", str(project), "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    added = {p["id"] for p in json.loads(result.stdout)["added"]}
    assert added == {"io.ggen.python.cli-from-ontology", "io.ggen.python.project-basics"}
    lock = (project / "ggen.lock").read_text()
    assert registry.url in lock
    again = publish(REPO / "example_gpacks" / "python-project-basics", registry.url, team_key)
    assert again[0] == 0, again
    assert "(already there, unchanged)" in again[1]  # a retried publish changes nothing


def test_a_pack_that_fails_validation_is_not_uploaded(
    tmp_path: Path, registry: Served, team_key: Path, token: str
) -> None:
    require_backend("bwrap")
    failing = '[validation]\nsteps = [{ name = "fails", run = "exit 3" }]\n'
    bad = write_gpack(tmp_path / "bad", "io.test.bad", "1.0.0", extra=failing)
    before = tree_state(registry.root)
    code, _, err = publish(bad, registry.url, team_key)
    assert code == 1
    assert "validation FAILED; nothing published" in err
    assert tree_state(registry.root) == before
    assert "POST" not in registry.log()  # only the preflight GET reached the server


def test_no_token_is_a_clear_error_before_validation(
    tmp_path: Path, registry: Served, team_key: Path, env: dict[str, str]
) -> None:
    src = write_gpack(tmp_path / "src", "io.test.pack", "1.0.0")
    code, out, err = publish(src, registry.url, team_key, "--json")
    assert code == 1
    assert "needs the registry's upload token: set $GGEN_REGISTRY_TOKEN" in err
    assert json.loads(out)["ok"] is False


def test_a_wrong_token_is_refused_and_never_printed(
    tmp_path: Path, registry: Served, team_key: Path, monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
) -> None:  # fmt: skip
    wrong = "wrong-token-value-that-must-not-leak"
    monkeypatch.setenv("GGEN_REGISTRY_TOKEN", wrong)
    src = write_gpack(tmp_path / "src", "io.test.pack", "1.0.0")
    for extra in ((), ("--json",)):
        code, out, err = publish(src, registry.url, team_key, *extra)
        assert code == 1
        assert "refused with HTTP 403: the token is not accepted" in err
        assert wrong not in out + err
    assert wrong not in registry.log()


def test_token_env_in_ggen_toml_names_the_variable(
    tmp_path: Path, registry: Served, team_key: Path, monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
) -> None:  # fmt: skip
    project = tmp_path / "project"
    project.mkdir()
    (project / "ggen.toml").write_text(
        f'[[market.registries]]\nurl = "{registry.url}"\ntoken_env = "TEAM_GPACKS_TOKEN"\n'
    )
    monkeypatch.setenv("GGEN_REGISTRY_TOKEN", "not-this-one-0123456789")
    src = write_gpack(tmp_path / "src", "io.test.pack", "1.0.0")
    code, _, err = publish(src, registry.url, team_key, "--project", str(project))
    assert code == 1
    assert "$TEAM_GPACKS_TOKEN (named by token_env" in err
    monkeypatch.setenv("TEAM_GPACKS_TOKEN", TOKEN)
    keypair(tmp_path / "stranger.pem")
    code, _, err = publish(src, registry.url, tmp_path / "stranger.pem", "--project", str(project))
    assert code == 1  # the token was accepted; the key is what the registry refuses
    assert "does not trust the signing key" in err
    (project / "ggen.toml").write_text(
        f'[[market.registries]]\nurl = "{registry.url}"\ntoken_env = "{TOKEN}"\n'
    )
    code, _, err = publish(src, registry.url, team_key, "--project", str(project))
    assert code == 1
    assert "token_env: the name of an environment variable" in err
    assert TOKEN not in err


def test_plain_http_to_another_machine_is_refused(
    tmp_path: Path, team_key: Path, token: str
) -> None:
    src = write_gpack(tmp_path / "src", "io.test.pack", "1.0.0")
    code, _, err = publish(src, "http://gpacks.example.invalid/", team_key)
    assert code == 1
    assert "refusing to send the upload token over plain http://" in err


def test_a_registry_that_is_down_fails_after_retries(
    tmp_path: Path, team_key: Path, token: str
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    src = write_gpack(tmp_path / "src", "io.test.pack", "1.0.0")
    code, _, err = publish(src, f"http://127.0.0.1:{port}/", team_key)
    assert code == 1
    assert "failed after 3 attempts: ConnectError" in err
    assert "nothing was published" in err


def test_5xx_answers_are_retried_then_reported(
    tmp_path: Path, http_registry: HttpRegistry, team_key: Path, token: str
) -> None:
    http_registry.control.status = 503
    src = write_gpack(tmp_path / "src", "io.test.pack", "1.0.0")
    code, _, err = publish(src, http_registry.url, team_key)
    assert code == 1
    assert "failed after 3 attempts: HTTP 503 (server error)" in err
    assert [s for p, s in http_registry.control.requests if "api/v1" in p] == [503, 503, 503]


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM files), signed by itself."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "cert.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


def test_tls_is_verified_and_a_private_ca_is_given_with_ssl_cert_file(
    tmp_path: Path, team_key: Path, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    root = tmp_path / "registry"
    root.mkdir()
    with serve(root, "--trusted-key", f"{team_key}.pub", "--tls-cert", str(cert),
               "--tls-key", str(key)) as served:  # fmt: skip
        assert served.url.startswith("https://127.0.0.1:")
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        src = write_gpack(tmp_path / "src", "io.test.pack", "1.0.0")
        before = tree_state(root)
        code, _, err = publish(src, served.url, team_key)
        assert code == 1
        assert "TLS verification failed" in err
        assert "SSL_CERT_FILE=ca.pem" in err
        assert tree_state(root) == before
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        config = MarketConfig((RegistrySpec("t", served.url),), tmp_path / "cache", 10.0)
        target = HttpTarget.open(served.url, config)
        from pytest_cleanroom.attest.keys import SigningKey

        signer = SigningKey.load(team_key)
        data = archive(tmp_path, "io.test.pack", "1.0.0")
        target.check_accepts(signer.keyid, len(data))
        answer = target.publish("io.test.pack", "1.0.0", data,
                                statement(signer, data, "io.test.pack", "1.0.0"))  # fmt: skip
        assert answer["already_published"] is False
        assert (root / "archives" / "io.test.pack-1.0.0.tar.gz").read_bytes() == data


def test_the_client_reports_the_servers_reason(tmp_path: Path, registry: Served, team_key: Path,
                                               token: str) -> None:  # fmt: skip
    from pytest_cleanroom.attest.keys import SigningKey

    signer = SigningKey.load(team_key)
    config = MarketConfig((), tmp_path / "cache", 10.0)
    target = HttpTarget.open(registry.url, config)
    one = archive(tmp_path, "io.test.pack", "1.0.0")
    other = archive(tmp_path, "io.test.pack", "1.0.0", "x")
    target.publish("io.test.pack", "1.0.0", one, statement(signer, one, "io.test.pack", "1.0.0"))
    with pytest.raises(UploadError, match=r"already published with another archive.*immutable"):
        target.publish("io.test.pack", "1.0.0", other,
                       statement(signer, other, "io.test.pack", "1.0.0"))  # fmt: skip
    failed = statement(signer, other, "io.test.pack", "2.0.0", outcome="failed")
    with pytest.raises(UploadError, match="did not pass"):
        target.publish("io.test.pack", "2.0.0", other, failed)
