"""A registry served over HTTP on 127.0.0.1: ETag cache, offline search, slow/down servers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ggen_market.lockfile import read_lock

from .conftest import HttpRegistry, ggen, tree_state, write_gpack


def publish(registry: HttpRegistry, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_gpack(src, "io.web.alpha", "1.0.0", files={"rdf/g.ttl": "<urn:a> <urn:b> <urn:c> .\n"})
    write_gpack(src, "io.web.beta", "2.1.0", deps={"io.web.alpha": ">=1.0,<2.0"})
    result = ggen("market", "index", str(src), "--output", str(registry.control.root))
    assert result.exit_code == 0, result.output


def search(registry: HttpRegistry, project: Path, *extra: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    result = ggen("market", "search", "web", "--registry", registry.url, "--project",
                  str(project), "--json", *extra)  # fmt: skip
    return result.exit_code, json.loads(result.stdout), result.stderr


def test_add_over_http_records_the_url(
    http_registry: HttpRegistry, project: Path, tmp_path: Path
) -> None:
    publish(http_registry, tmp_path)
    result = ggen("market", "add", "io.web.beta", "--registry", http_registry.url, "--project",
                  str(project), "--progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "io.web.beta-2.1.0.tar.gz" in result.stderr  # progress line on stderr
    lock = read_lock(project / "ggen.lock")
    assert lock is not None
    assert lock.packages["io.web.alpha"].source == http_registry.url
    assert (project / ".ggen/packages/io.web.alpha/1.0.0/rdf/g.ttl").is_file()


def test_index_is_revalidated_with_etag_and_search_works_offline(
    http_registry: HttpRegistry, project: Path, tmp_path: Path
) -> None:
    publish(http_registry, tmp_path)
    code, first, _ = search(http_registry, project)
    assert code == 0
    assert [r["id"] for r in first["results"]] == ["io.web.alpha", "io.web.beta"]
    code, second, _ = search(http_registry, project)
    assert code == 0
    assert second["results"] == first["results"]
    index_requests = [s for p, s in http_registry.control.requests if p.endswith("index.json")]
    assert index_requests == [200, 304]
    http_registry.stop()
    code, offline, stderr = search(http_registry, project)
    assert code == 0
    assert offline["results"] == first["results"]
    assert "unreachable" in stderr
    assert "using the index cached at" in stderr
    code, explicit, _ = search(http_registry, project, "--offline")
    assert code == 0
    assert explicit["results"] == first["results"]


def test_slow_registry_times_out_and_falls_back_to_the_cache(
    http_registry: HttpRegistry, project: Path, tmp_path: Path
) -> None:
    publish(http_registry, tmp_path)
    assert search(http_registry, project)[0] == 0
    http_registry.control.delay = 1.5
    code, data, stderr = search(http_registry, project, "--timeout", "0.3")
    assert code == 0
    assert len(data["results"]) == 2
    assert "no answer within 0.3 s (timed out)" in stderr


def test_slow_registry_without_cache_is_a_clear_error(
    http_registry: HttpRegistry, project: Path, tmp_path: Path
) -> None:
    publish(http_registry, tmp_path)
    http_registry.control.delay = 1.5
    result = ggen("market", "add", "io.web.beta", "--registry", http_registry.url, "--project",
                  str(project), "--timeout", "0.3")  # fmt: skip
    assert result.exit_code == 1
    assert "timed out" in result.stderr
    assert "no cached copy" in result.stderr
    assert list(project.iterdir()) == []


def test_registry_down_without_cache(http_registry: HttpRegistry, project: Path) -> None:
    url = http_registry.url
    http_registry.stop()
    result = ggen("market", "search", "x", "--registry", url, "--project", str(project))
    assert result.exit_code == 1
    assert f"registry {url}index.json: unreachable" in result.stderr


def test_server_errors_fall_back_to_the_cache(
    http_registry: HttpRegistry, project: Path, tmp_path: Path
) -> None:
    publish(http_registry, tmp_path)
    assert search(http_registry, project)[0] == 0
    http_registry.control.status = 503
    code, data, stderr = search(http_registry, project)
    assert code == 0
    assert len(data["results"]) == 2
    assert "HTTP 503" in stderr
    # 5xx answers are retried before giving up.
    assert [s for _, s in http_registry.control.requests].count(503) == 3


def test_truncated_index_is_rejected_and_not_cached(
    http_registry: HttpRegistry, project: Path, tmp_path: Path
) -> None:
    publish(http_registry, tmp_path)
    body = (http_registry.control.root / "index.json").read_bytes()
    http_registry.control.overrides["index.json"] = body[: len(body) // 2]
    result = ggen("market", "search", "web", "--registry", http_registry.url, "--project",
                  str(project))  # fmt: skip
    assert result.exit_code == 1
    assert "not valid JSON" in result.stderr
    assert "truncated" in result.stderr
    cache = Path(__import__("os").environ["GGEN_CACHE_DIR"]) / "http"
    assert list(cache.rglob("index.json")) == []


def test_malformed_index_names_the_field(
    http_registry: HttpRegistry, project: Path, tmp_path: Path
) -> None:
    publish(http_registry, tmp_path)
    index = json.loads((http_registry.control.root / "index.json").read_text())
    index["packs"]["io.web.beta"]["versions"]["2.1.0"]["sha256"] = "not-a-digest"
    http_registry.control.overrides["index.json"] = json.dumps(index).encode()
    result = ggen("market", "info", "io.web.beta", "--registry", http_registry.url, "--project",
                  str(project))  # fmt: skip
    assert result.exit_code == 1
    assert "packs['io.web.beta'].versions['2.1.0'].sha256" in result.stderr


def test_missing_archive_over_http(
    http_registry: HttpRegistry, project: Path, tmp_path: Path
) -> None:
    publish(http_registry, tmp_path)
    shutil.rmtree(http_registry.control.root / "archives")
    result = ggen("market", "add", "io.web.alpha", "--registry", http_registry.url, "--project",
                  str(project))  # fmt: skip
    assert result.exit_code == 1
    assert "missing archive" in result.stderr
    assert "404" in result.stderr
    assert list(project.iterdir()) == []


def test_tampered_archive_over_http_is_refused(
    http_registry: HttpRegistry, project: Path, tmp_path: Path
) -> None:
    publish(http_registry, tmp_path)
    ok = ggen("market", "add", "io.web.alpha", "--registry", http_registry.url, "--project",
              str(project))  # fmt: skip
    assert ok.exit_code == 0, ok.output
    before = tree_state(project / ".ggen", project / "ggen.lock")
    archive = "archives/io.web.beta-2.1.0.tar.gz"
    original = (http_registry.control.root / archive).read_bytes()
    http_registry.control.overrides[archive] = original + b"appended"
    result = ggen("market", "add", "io.web.beta", "--registry", http_registry.url, "--project",
                  str(project))  # fmt: skip
    assert result.exit_code == 1
    assert "sha256 mismatch" in result.stderr
    assert __import__("hashlib").sha256(original).hexdigest() in result.stderr
    assert tree_state(project / ".ggen", project / "ggen.lock") == before
