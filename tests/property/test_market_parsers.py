"""Every market parser, fed generated and damaged input: the only outcomes are a result or the
project's own typed error (:class:`MarketError`), each within a time and memory bound."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ggen_market.archive import ExtractLimits, extract_archive, pack_directory
from ggen_market.builder import build_index
from ggen_market.errors import MarketError
from ggen_market.index import parse_index
from ggen_market.lockfile import read_lock
from ggen_market.manifest import load_manifest
from ggen_market.registry import HttpRegistry
from ggen_market.template.generate import generate, gpack_templates
from ggen_market.template.rdf import load_graph, select

from .conftest import bounded, json_values, mutations

MANIFEST = b"""[gpack]
id = "io.prop.alpha"
name = "alpha"
version = "1.2.3"
description = "a pack"
tags = ["x"]

[dependencies]
"io.prop.beta" = "^1.0"

[templates]
patterns = ["templates/**/*.tmpl"]
"""
TEMPLATE = b"""---
to: "src/{{ name | snake }}.py"
vars:
  name: Hello World
  items: [1, 2, 3]
---
{% for i in items %}{{ i * 2 }} {{ name | upper }}{% endfor %}
{{ gpack.id }}
"""
TURTLE = b"""@prefix ex: <https://example.org/> .
ex:a ex:label "Alpha" ; ex:rank 1 .
ex:b ex:label "Bravo"@en ; ex:rank "2"^^<http://www.w3.org/2001/XMLSchema#integer> .
"""
QUERY = b"SELECT ?s ?label WHERE { ?s <https://example.org/label> ?label } ORDER BY ?label"


@pytest.fixture(scope="module")
def gpack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gpack") / "io.prop.alpha"
    (root / "templates").mkdir(parents=True)
    (root / "gpack.toml").write_bytes(MANIFEST.replace(b'"io.prop.beta" = "^1.0"\n', b""))
    (root / "templates" / "t.tmpl").write_bytes(TEMPLATE)
    return root


@pytest.fixture(scope="module")
def index_bytes(gpack_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("registry")
    build_index(gpack_dir.parent, out)
    return (out / "index.json").read_bytes()


@given(data=mutations(MANIFEST))
def test_gpack_toml(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("m") / "gpack.toml"
    path.write_bytes(data)
    bounded(lambda: load_manifest(path), (MarketError,))


@given(data=st.one_of(st.binary(max_size=64), st.just(b"")))
def test_index_json_of_any_bytes(data: bytes) -> None:
    bounded(lambda: parse_index(data, "index.json"), (MarketError,))


@given(packs=json_values)
def test_index_json_of_any_json(packs: object) -> None:
    document = json.dumps({"format": 1, "packs": packs}).encode()
    bounded(lambda: parse_index(document, "index.json"), (MarketError,))


@given(seed=st.data())
def test_index_json_damaged(seed: st.DataObject, index_bytes: bytes) -> None:
    data = seed.draw(mutations(index_bytes))
    index = bounded(lambda: parse_index(data, "index.json"), (MarketError,))
    if index is not None:  # what parsed must also resolve each version, or say why not
        for pid in index.packs:
            bounded(lambda pid=pid: list(index.packs[pid].versions.values()), (MarketError,))


@contextlib.contextmanager
def _serving() -> Iterator[tuple[str, dict[str, bytes]]]:
    state = {"body": b""}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = state["body"]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def http_index() -> Iterator[tuple[str, dict[str, bytes]]]:
    with _serving() as served:
        yield served


@given(seed=st.data())
def test_index_json_over_http(
    seed: st.DataObject,
    index_bytes: bytes,
    http_index: tuple[str, dict[str, bytes]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    url, state = http_index
    state["body"] = seed.draw(st.one_of(mutations(index_bytes), st.binary(max_size=64)))
    registry = HttpRegistry(url, cache=tmp_path_factory.mktemp("cache"), timeout=5)
    bounded(registry.index, (MarketError,))


@pytest.fixture(scope="module")
def archive_bytes(gpack_dir: Path) -> bytes:
    return pack_directory(gpack_dir)


def _tar_of(members: list[tuple[str, bytes, bytes]]) -> bytes:
    """An uncompressed tar of hostile members: (name, type flag, link name or content)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = payload.decode(errors="replace")
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return raw.getvalue()


member_names = st.one_of(
    st.sampled_from(["gpack.toml", "../x", "/etc/x", "a/../../x", "a\x00b", "./a", "a//b", "."]),
    st.text(max_size=30),
)
members = st.lists(
    st.tuples(
        member_names,
        st.sampled_from(
            [
                tarfile.REGTYPE,
                tarfile.SYMTYPE,
                tarfile.LNKTYPE,
                tarfile.DIRTYPE,
                tarfile.FIFOTYPE,
                tarfile.CHRTYPE,
            ]
        ),
        st.binary(max_size=32),
    ),
    max_size=5,
)


@given(seed=st.data())
def test_archives(
    seed: st.DataObject, archive_bytes: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = seed.draw(st.one_of(mutations(archive_bytes), members.map(_tar_of)))
    where = tmp_path_factory.mktemp("a")
    (where / "a.tar.gz").write_bytes(data)
    limits = ExtractLimits(max_total_bytes=1 << 20, max_file_bytes=1 << 19, max_entries=100)
    bounded(
        lambda: extract_archive(where / "a.tar.gz", where / "out", limits=limits, label="a"),
        (MarketError,),
    )
    for path in (where / "out").rglob("*") if (where / "out").exists() else []:
        assert path.resolve().is_relative_to((where / "out").resolve())


LOCK = b"""format = 1

[requires]
"io.prop.alpha" = "^1.0"

[[package]]
id = "io.prop.alpha"
version = "1.2.3"
source = "embedded:"
archive = "archives/io.prop.alpha-1.2.3.tar.gz"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
tree_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
dependencies = []
test_pack = false
"""


@given(data=mutations(LOCK))
def test_ggen_lock(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("l") / "ggen.lock"
    path.write_bytes(data)
    bounded(lambda: read_lock(path), (MarketError,))


jinja_pieces = st.sampled_from(
    ["{{", "}}", "{%", "%}", "{#", "#}", " for ", " in ", " endfor ", " if ", " endif ", "x",
     "range(", ")", "*", "**", "10", "9" * 30, "'a'", "|", "upper", "lipsum", "(", ".", "__class__",
     "name", "items", "gpack", " set ", "=", "~", "%", "center", "999999", "\n", "---", "to:"]
)  # fmt: skip


def _template_of(pieces: list[str]) -> bytes:
    return b"---\nto: out.txt\n---\n" + "".join(pieces).encode()


@given(data=st.one_of(mutations(TEMPLATE), st.lists(jinja_pieces, max_size=25).map(_template_of)))
def test_templates(data: bytes, gpack_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("t") / "io.prop.alpha"
    (root / "templates").mkdir(parents=True)
    (root / "gpack.toml").write_bytes((gpack_dir / "gpack.toml").read_bytes())
    (root / "templates" / "t.tmpl").write_bytes(data)
    out = root.parent / "out"

    def render() -> object:
        return generate(gpack_templates(root), out, {}, dry_run=True)

    bounded(render, (MarketError,))
    assert not out.exists()  # a dry run writes nothing, whatever happened


@given(graph=mutations(TURTLE), query=mutations(QUERY))
def test_rdf_and_sparql(
    graph: bytes, query: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("r") / "g.ttl"
    path.write_bytes(graph)
    loaded = bounded(lambda: load_graph([path]), (MarketError,))
    if loaded is not None:
        text = query.decode(errors="replace")
        bounded(lambda: select(loaded, text, {"ex": "https://example.org/"}, "q"), (MarketError,))


def test_the_seeds_are_valid(
    gpack_dir: Path, index_bytes: bytes, archive_bytes: bytes, tmp_path: Path
) -> None:
    """The inputs the mutations start from parse, so the properties above start from success."""
    (tmp_path / "gpack.toml").write_bytes(MANIFEST)
    assert load_manifest(tmp_path / "gpack.toml").id == "io.prop.alpha"
    assert "io.prop.alpha" in parse_index(index_bytes, "index.json").packs
    (tmp_path / "a.tar.gz").write_bytes(archive_bytes)
    extract_archive(tmp_path / "a.tar.gz", tmp_path / "x", limits=ExtractLimits(), label="a")
    assert (tmp_path / "x" / "templates" / "t.tmpl").read_bytes() == TEMPLATE
    (tmp_path / "ggen.lock").write_bytes(LOCK)
    assert read_lock(tmp_path / "ggen.lock") is not None
    actions = generate(gpack_templates(gpack_dir), tmp_path / "out", {}, dry_run=True)
    assert [a.path.name for a in actions] == ["hello_world.py"]
    (tmp_path / "g.ttl").write_bytes(TURTLE)
    rows = select(load_graph([tmp_path / "g.ttl"]), QUERY.decode(), {}, "q")
    assert [r["label"] for r in rows] == ["Alpha", "Bravo"]
