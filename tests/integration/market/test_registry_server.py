"""``ggen market serve``: a real server process on 127.0.0.1, attacked through its upload API.

Every refused upload leaves the registry directory exactly as it was (``tree_state``).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ggen_market.archive import sha256_bytes
from ggen_market.index import parse_index
from pytest_cleanroom.attest.keys import SigningKey

from .conftest import tree_state
from .served import TOKEN, Served, archive, keypair, serve, statement, upload

pytestmark = pytest.mark.integration

PACK = "io.test.served"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Served]:
    root = tmp_path / "registry"
    root.mkdir()
    keypair(tmp_path / "team.pem")
    with serve(root, "--trusted-key", str(tmp_path / "team.pem.pub"),
               "--max-upload-bytes", "200000") as served:  # fmt: skip
        yield served


@pytest.fixture
def team(tmp_path: Path, registry: Served) -> SigningKey:
    return SigningKey.load(tmp_path / "team.pem")


def published(registry: Served) -> dict[str, list[str]]:
    """What the server's own index says, read over HTTP."""
    answer = httpx.get(registry.url + "index.json", timeout=10)
    assert answer.status_code == 200
    index = parse_index(answer.content, "served index")
    return {pid: sorted(index.packs[pid].versions) for pid in index.packs}


def send(
    registry: Served, data: bytes, envelope: dict[str, Any], version: str = "1.0.0", **fields: Any
) -> httpx.Response:
    """Publish ``data`` as PACK@``version`` with ``envelope``; ``fields`` override the form."""
    return upload(registry.url, data, envelope, pack_id=PACK, version=version, **fields)


def refused(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["ok"] is False
    assert words in body["error"]


def test_a_valid_upload_is_served_to_readers(
    tmp_path: Path, registry: Served, team: SigningKey
) -> None:
    assert published(registry) == {}  # an empty registry serves an empty index
    data = archive(tmp_path, PACK, "1.0.0")
    answer = send(registry, data, statement(team, data, PACK, "1.0.0"))
    assert answer.status_code == 201, answer.text
    assert answer.json()["archive"] == f"archives/{PACK}-1.0.0.tar.gz"
    assert published(registry) == {PACK: ["1.0.0"]}
    served = httpx.get(registry.url + f"archives/{PACK}-1.0.0.tar.gz", timeout=10)
    assert served.content == data


@pytest.mark.parametrize(
    ("header", "status", "words"),
    [
        (None, 401, "Bearer <token> header is required"),
        ("Bearer not-the-token", 403, "token is not accepted"),
        (f"Basic {TOKEN}", 401, "Bearer <token> header is required"),
        (f"Bearer {TOKEN}x", 403, "token is not accepted"),
    ],
)
def test_a_missing_or_wrong_token_is_refused(
    tmp_path: Path, registry: Served, team: SigningKey, header: str | None, status: int, words: str
) -> None:
    data = archive(tmp_path, PACK, "1.0.0")
    before = tree_state(registry.root)
    fields = {"id": PACK, "version": "1.0.0", "sha256": "0" * 64,
              "statement": json.dumps(statement(team, data, PACK, "1.0.0"))}  # fmt: skip
    headers = {"Authorization": header} if header else {}
    answer = httpx.post(registry.url + "api/v1/publish", data=fields, headers=headers,
                        files={"archive": (f"{PACK}-1.0.0.tar.gz", data)}, timeout=30)  # fmt: skip
    refused(answer, status, words)
    refused(httpx.get(registry.url + "api/v1/registry", headers=headers, timeout=10), status, words)
    assert tree_state(registry.root) == before
    assert TOKEN not in registry.log()  # the server never logs a token, not even a wrong one


def test_an_archive_changed_after_validation_is_refused(
    tmp_path: Path, registry: Served, team: SigningKey
) -> None:
    validated = archive(tmp_path, PACK, "1.0.0")
    tampered = archive(tmp_path, PACK, "1.0.0", "evil")
    before = tree_state(registry.root)
    answer = send(registry, tampered, statement(team, validated, PACK, "1.0.0"))
    refused(answer, 422, "the archive was changed after validation")
    assert tree_state(registry.root) == before


def test_an_archive_damaged_in_transit_is_refused(
    tmp_path: Path, registry: Served, team: SigningKey
) -> None:
    data = archive(tmp_path, PACK, "1.0.0")
    before = tree_state(registry.root)
    damaged = data[:-1] + bytes([data[-1] ^ 1])
    answer = send(
        registry, damaged, statement(team, data, PACK, "1.0.0"), sha256=sha256_bytes(data)
    )
    refused(answer, 400, "damaged in transit")
    assert tree_state(registry.root) == before


def test_a_statement_for_another_digest_or_version_is_refused(
    tmp_path: Path, registry: Served, team: SigningKey
) -> None:
    one = archive(tmp_path, PACK, "1.0.0")
    two = archive(tmp_path, PACK, "2.0.0")
    before = tree_state(registry.root)
    answer = send(registry, two, statement(team, one, PACK, "1.0.0"), version="2.0.0")
    refused(answer, 422, f"it is about {PACK}@1.0.0")
    other = archive(tmp_path, "io.test.other", "2.0.0")
    answer = send(registry, two, statement(team, other, PACK, "2.0.0"), version="2.0.0")
    refused(answer, 422, "it is about the archive sha256")
    assert tree_state(registry.root) == before


def test_a_statement_by_an_untrusted_key_is_refused(tmp_path: Path, registry: Served) -> None:
    stranger = keypair(tmp_path / "stranger.pem")
    data = archive(tmp_path, PACK, "1.0.0")
    before = tree_state(registry.root)
    answer = send(registry, data, statement(stranger, data, PACK, "1.0.0"))
    refused(answer, 422, "which is not a trusted key")
    assert tree_state(registry.root) == before


def test_a_failing_statement_is_refused(tmp_path: Path, registry: Served, team: SigningKey) -> None:
    data = archive(tmp_path, PACK, "1.0.0")
    before = tree_state(registry.root)
    failing = statement(team, data, PACK, "1.0.0", outcome="failed")
    answer = upload(registry.url, data, failing, pack_id=PACK, version="1.0.0")
    refused(answer, 422, "the validation did not pass (FAILED)")
    assert tree_state(registry.root) == before


def test_published_versions_are_immutable(
    tmp_path: Path, registry: Served, team: SigningKey
) -> None:
    data = archive(tmp_path, PACK, "1.0.0")
    first = send(registry, data, statement(team, data, PACK, "1.0.0"))
    assert first.status_code == 201, first.text
    before = tree_state(registry.root)
    again = send(registry, data, statement(team, data, PACK, "1.0.0"))
    assert again.status_code == 200, again.text  # a retry of the same bytes: nothing changes
    assert again.json()["already_published"] is True
    other = archive(tmp_path, PACK, "1.0.0", "other bytes")
    answer = send(registry, other, statement(team, other, PACK, "1.0.0"))
    refused(answer, 409, "already published with another archive")
    assert tree_state(registry.root) == before


def raw_request(url: str, head: str, body: bytes) -> bytes:
    """Send ``head`` and ``body`` on a plain socket, read the answer (b"" when none)."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(head.encode() + b"\r\n" + body)
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_an_upload_cut_in_the_middle_writes_nothing(
    tmp_path: Path, registry: Served, team: SigningKey
) -> None:
    data = archive(tmp_path, PACK, "1.0.0")
    request = httpx.Request(
        "POST", registry.url + "api/v1/publish",
        headers={"Authorization": f"Bearer {TOKEN}"},
        data={"id": PACK, "version": "1.0.0", "sha256": sha256_bytes(data),
              "statement": json.dumps(statement(team, data, PACK, "1.0.0"))},
        files={"archive": (f"{PACK}-1.0.0.tar.gz", data)},
    )  # fmt: skip
    body = request.read()
    head = "POST /api/v1/publish HTTP/1.1\r\nHost: x\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in request.headers.items() if k.lower() != "host"
    )
    before = tree_state(registry.root)
    assert raw_request(registry.url, head, body[: len(body) // 2]) == b""  # dropped: no answer
    assert tree_state(registry.root) == before
    assert published(registry) == {}  # still serving, nothing half-added
    whole = raw_request(registry.url, head, body)  # the same request, whole, goes through
    assert whole.startswith(b"HTTP/1.0 201"), whole[:200]
    assert published(registry) == {PACK: ["1.0.0"]}
    assert "upload cut off after" in registry.log()


@pytest.mark.parametrize(
    ("pack_id", "version", "filename", "words"),
    [
        ("../../evil", "1.0.0", "x.tar.gz", "is not a reverse-DNS id"),
        ("io.test.served/../../evil", "1.0.0", "x.tar.gz", "is not a reverse-DNS id"),
        (PACK, "1.0.0/../../../evil", "x.tar.gz", "version:"),
        (PACK, "1.0.0", "../../../evil.tar.gz", "the file must be named"),
        (PACK, "1.0.0", f"archives/../../{PACK}-1.0.0.tar.gz", "the file must be named"),
        ("io.test.another", "1.0.0", "io.test.another-1.0.0.tar.gz", "it is about"),
    ],
)
def test_path_traversal_in_id_version_or_filename_is_refused(
    tmp_path: Path, registry: Served, team: SigningKey, pack_id: str, version: str, filename: str,
    words: str,
) -> None:  # fmt: skip
    data = archive(tmp_path, PACK, "1.0.0")
    before = tree_state(tmp_path)
    answer = upload(registry.url, data, statement(team, data, PACK, "1.0.0"),
                    pack_id=pack_id, version=version, filename=filename)  # fmt: skip
    assert answer.status_code in (400, 422), answer.text
    assert words in answer.json()["error"]
    assert tree_state(tmp_path) == before  # nothing anywhere under the test's directory


def test_an_archive_whose_manifest_names_another_pack_is_refused(
    tmp_path: Path, registry: Served, team: SigningKey
) -> None:
    data = archive(tmp_path, "io.test.other", "1.0.0")
    forged = statement(team, data, PACK, "1.0.0")
    answer = upload(registry.url, data, forged, pack_id=PACK, version="1.0.0")
    refused(answer, 400, f"gpack.toml is io.test.other@1.0.0, not {PACK}@1.0.0")
    assert published(registry) == {}


def test_reading_serves_only_the_index_and_plain_archive_files(
    tmp_path: Path, registry: Served
) -> None:
    (tmp_path / "secret.txt").write_text("host secret\n")
    (registry.root / "archives").mkdir()
    os.symlink(tmp_path / "secret.txt", registry.root / "archives" / "io.x.y-1.0.0.tar.gz")
    for path in ("archives/io.x.y-1.0.0.tar.gz", "archives/../../secret.txt",
                 "archives/%2e%2e/%2e%2e/secret.txt", "../secret.txt", "archives/"):  # fmt: skip
        with socket.create_connection(("127.0.0.1", int(registry.url.rsplit(":", 1)[1][:-1]))) as c:
            c.sendall(f"GET /{path} HTTP/1.0\r\n\r\n".encode())
            answer = b"".join(iter(lambda c=c: c.recv(65536), b""))  # type: ignore[misc]
        assert answer.startswith(b"HTTP/1.0 404"), (path, answer[:100])
        assert b"host secret" not in answer


def test_a_body_over_the_cap_or_without_length_is_refused_unread(registry: Served) -> None:
    auth = f"Authorization: Bearer {TOKEN}\r\n"
    ctype = "Content-Type: multipart/form-data; boundary=b\r\n"
    huge = raw_request(registry.url, f"POST /api/v1/publish HTTP/1.0\r\n{auth}{ctype}"
                       "Content-Length: 50000000000\r\n", b"x" * 1000)  # fmt: skip
    assert huge.startswith(b"HTTP/1.0 413"), huge[:200]
    assert b"takes at most 200000" in huge
    unsized = raw_request(registry.url, f"POST /api/v1/publish HTTP/1.0\r\n{auth}{ctype}"
                          "Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n")  # fmt: skip
    assert unsized.startswith(b"HTTP/1.0 411"), unsized[:200]
    assert published(registry) == {}


def test_a_linked_archives_folder_is_never_written_through(
    tmp_path: Path, registry: Served, team: SigningKey
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, registry.root / "archives")
    data = archive(tmp_path, PACK, "1.0.0")
    answer = send(registry, data, statement(team, data, PACK, "1.0.0"))
    refused(answer, 500, "refusing to write through it")
    assert list(outside.iterdir()) == []
    assert not (registry.root / "index.json").exists()


def seed_large_index(root: Path) -> None:
    """An index of 1,500 packs: each publish's read-modify-write of it lasts long enough for
    concurrent publishes to overlap, so a missing lock loses versions (checked by hand)."""
    seed = {
        f"io.seed.pack{n}": {"name": f"pack{n}", "versions": {"1.0.0": {
            "archive": f"archives/io.seed.pack{n}-1.0.0.tar.gz", "sha256": "0" * 64, "size": 1,
        }}} for n in range(1500)
    }  # fmt: skip
    (root / "index.json").write_text(json.dumps({"format": 1, "packs": seed}))


def test_concurrent_publishes_of_two_versions_both_land(
    tmp_path: Path, registry: Served, team: SigningKey
) -> None:
    seed_large_index(registry.root)
    uploads = {v: archive(tmp_path, PACK, v) for v in ("1.0.0", "1.1.0", "2.0.0")}
    answers: dict[str, int] = {}
    barrier = threading.Barrier(len(uploads))

    def send(version: str) -> None:
        data = uploads[version]
        envelope = statement(team, data, PACK, version)
        barrier.wait()
        answers[version] = upload(registry.url, data, envelope, pack_id=PACK,
                                  version=version).status_code  # fmt: skip

    threads = [threading.Thread(target=send, args=(v,)) for v in uploads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == dict.fromkeys(uploads, 201)
    assert published(registry)[PACK] == sorted(uploads)  # no lost update of the index
    for version, data in uploads.items():
        served = httpx.get(registry.url + f"archives/{PACK}-{version}.tar.gz", timeout=10)
        assert served.content == data


def test_without_a_token_the_registry_is_read_only(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    root.mkdir()
    with serve(root, token=None) as served:
        answer = httpx.get(served.url + "api/v1/registry",
                           headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)  # fmt: skip
        refused(answer, 403, "takes no uploads")
        assert published(served) == {}


def run_serve(*args: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from ggen_market.cli import market

    result = CliRunner().invoke(market, ["serve", *args], catch_exceptions=False)
    return result.exit_code, result.stderr


def test_serve_refuses_a_shared_token_file_and_uploads_nobody_can_sign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GGEN_REGISTRY_TOKEN", raising=False)
    root = tmp_path / "registry"
    root.mkdir()
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# team\n{TOKEN}\n")
    tokens.chmod(0o644)
    code, err = run_serve(str(root), "--token-file", str(tokens))
    assert code == 1
    assert "readable by others (mode 644); chmod 600 it" in err
    tokens.chmod(0o600)
    code, err = run_serve(str(root), "--token-file", str(tokens))
    assert code == 1
    assert "uploads need at least one --trusted-key" in err
    (root / "index.json").write_text("{not json")
    code, err = run_serve(str(root))
    assert code == 1
    assert "index.json: not valid JSON" in err


def test_two_servers_on_one_directory_serialise_their_publishes(
    tmp_path: Path, registry: Served, team: SigningKey
) -> None:
    """The flock on the registry directory: two processes never lose each other's version."""
    seed_large_index(registry.root)
    with serve(registry.root, "--trusted-key", str(tmp_path / "team.pem.pub")) as second:
        versions = [f"1.{n}.0" for n in range(4)]
        uploads = {v: archive(tmp_path, PACK, v) for v in versions}
        codes: dict[str, int] = {}

        def send_to(server: Served, version: str) -> None:
            data = uploads[version]
            codes[version] = send(server, data, statement(team, data, PACK, version),
                                  version=version).status_code  # fmt: skip

        threads = [
            threading.Thread(target=send_to, args=((registry, second)[n % 2], v))
            for n, v in enumerate(versions)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert codes == dict.fromkeys(versions, 201)
        assert published(second)[PACK] == sorted(versions)


def test_an_upload_that_stalls_is_dropped_and_others_still_publish(
    tmp_path: Path, team: SigningKey
) -> None:
    root = tmp_path / "stalled"
    root.mkdir()
    with serve(root, "--trusted-key", str(tmp_path / "team.pem.pub"),
               "--read-timeout", "1") as served:  # fmt: skip
        host, port = served.url.split("//")[1].rstrip("/").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as stalled:
            stalled.sendall(
                f"POST /api/v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 5000\r\n\r\n"
                "--b\r\n".encode()
            )  # then nothing: the server gives up after a second of silence
            data = archive(tmp_path, PACK, "1.0.0")
            answer = send(served, data, statement(team, data, PACK, "1.0.0"))
            assert answer.status_code == 201, answer.text  # the stalled one blocks nobody
            assert stalled.recv(65536) == b""  # dropped without an answer
        assert published(served) == {PACK: ["1.0.0"]}
        assert "upload cut off after 5 of 5000 bytes" in served.log()


def test_an_upload_trickled_past_the_deadline_is_cut_and_writes_nothing(
    tmp_path: Path, team: SigningKey
) -> None:
    root = tmp_path / "trickled"
    root.mkdir()
    data = archive(tmp_path, PACK, "1.0.0")
    with serve(root, "--trusted-key", str(tmp_path / "team.pem.pub"), "--read-timeout", "5",
               "--upload-timeout", "2") as served:  # fmt: skip
        host, port = served.url.split("//")[1].rstrip("/").split(":")
        before = tree_state(root)
        with socket.create_connection((host, int(port)), timeout=30) as slow:
            slow.sendall(
                f"POST /api/v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 5000\r\n\r\n"
                .encode()
            )  # fmt: skip
            stop = threading.Event()

            def trickle() -> None:  # a byte every 0.2 s: well within each read's 5 s wait
                while not stop.wait(0.2):
                    try:
                        slow.send(b"x")
                    except OSError:
                        return  # the server cut the connection

            sender = threading.Thread(target=trickle)
            sender.start()
            try:
                answer = slow.recv(65536)  # blocks until the server answers or cuts
            except ConnectionResetError:
                answer = b""
            finally:
                stop.set()
                sender.join()
        assert answer == b"" or b" 408 " in answer.split(b"\r\n")[0], answer[:200]
        assert tree_state(root) == before
        fine = send(served, data, statement(team, data, PACK, "1.0.0"))
        assert fine.status_code == 201, fine.text  # the server still takes uploads
        assert "the upload took longer than 2 s: upload cut off after" in served.log()
