"""``ggen market import``: ggen's package.toml and gpack.toml become gpacks, every change reported,
packages that cannot be imported refused with their reasons and nothing half-written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ggen_market.builder import check_gpack
from ggen_market.cli import market
from ggen_market.ggen_import import GgenImportError, import_packages
from ggen_market.manifest import load_manifest

PACKAGE_TOML = """\
[package]
name = "order-service"
version = "1.2.0"
description = "Orders"
author = "ggen-team"
categories = ["Web Services", "backend"]
tags = ["API", "rest"]
repository = "https://example.com/orders"
dependencies = ["shared-types"]

[dependencies]
serde = { version = "1.0", features = ["derive"] }
ggen = ">=2.6.0"

[install]
type = "template"

[variables]
name = { type = "string", default = "orders" }
"""

TEMPLATE = "---\nto: out/{{ name }}.txt\n---\nHello {{ name | default(value='x') }}\n"


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


@pytest.fixture
def packages(tmp_path: Path) -> Path:
    src = tmp_path / "ggen"
    write(
        src / "order-service",
        {
            "package.toml": PACKAGE_TOML,
            "templates/order.txt.tmpl": TEMPLATE,
            "templates/plain.rs.tmpl": "fn main() {}\n",  # no front matter: a ggen.toml rule's
            "ontology/orders.ttl": "@prefix o: <urn:o:> .\no:a o:b o:c .\n",
            "queries/all.rq": "SELECT * WHERE { ?s ?p ?o }\n",
        },
    )
    write(
        src / "shared-types",
        {"package.toml": '[package]\nname = "shared-types"\nversion = "0.3.0"\n'},
    )
    return src


def test_package_toml_becomes_a_gpack_with_every_change_reported(
    packages: Path, tmp_path: Path
) -> None:
    out = tmp_path / "gpacks"
    result = CliRunner().invoke(market, ["import", str(packages), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [i["id"] for i in report["imported"]] == [
        "io.ggen.order-service",
        "io.ggen.shared-types",
    ]
    manifest = check_gpack(out / "io.ggen.order-service")
    info = manifest.gpack
    assert (info.version, info.authors, info.category) == ("1.2.0", ["ggen-team"], "web-services")
    assert info.tags == ["api", "rest", "backend"]
    assert info.homepage == "https://example.com/orders"
    assert info.ggen_compat == ">=0.1.0"
    assert manifest.dependencies == {"io.ggen.shared-types": "*"}
    assert manifest.templates.patterns == ["templates/order.txt.tmpl"]
    assert manifest.rdf.patterns == ["**/*.ttl"]
    assert manifest.queries.patterns == ["**/*.rq"]
    # Every file came along, the ggen manifest too.
    assert "templates/plain.rs.tmpl" in tree(out / "io.ggen.order-service")
    assert (out / "io.ggen.order-service" / "package.toml").read_text() == PACKAGE_TOML
    changes = {c["field"]: c for c in report["imported"][0]["changes"]}
    assert changes["[dependencies]"]["before"] == ["serde"]
    assert changes['[dependencies] "ggen"']["after"] == ">=0.1.0"
    assert "plain.rs.tmpl" in changes["[templates] patterns"]["why"]
    assert "runs no commands" in changes["[install]"]["why"]
    assert "--var" in changes["[variables]"]["why"]


def test_text_output_lists_changes_under_each_gpack(
    packages: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(market, ["import", str(packages / "shared-types"), "-o", "out"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("imported io.ggen.shared-types 0.3.0 from ")
    assert "  [package] id: (absent) -> 'io.ggen.shared-types'" in lines[1]


def test_ggen_gpack_toml_keeps_its_patterns_and_inline_graphs_become_files(tmp_path: Path) -> None:
    pack = write(
        tmp_path / "pack",
        {
            "gpack.toml": (
                '[gpack]\nid = "mfw.demo"\nname = "Demo"\nversion = "26.7.21"\n'
                'ggen_compat = ">=26.7.3 <27.0.0"\n\n'
                '[templates]\npatterns = ["templates/**/*.tmpl"]\nincludes = []\n\n'
                '[rdf]\nbase = "urn:d:"\npatterns = ["ontology.ttl"]\n'
                'inline = ["d:x d:y d:z ."]\n\n[rdf.prefixes]\nd = "urn:d:"\n\n'
                '[queries]\npatterns = ["queries/*.rq"]\n\n[shapes]\npatterns = ["shapes.ttl"]\n'
            ),
            "ontology.ttl": "@prefix d: <urn:d:> .\nd:a d:b d:c .\n",
            "templates/a.txt.tmpl": "---\nto: a.txt\n---\n{{ 1 }}\n",
            "templates/Cargo.toml.tmpl": "[package]\n",
        },
    )
    report = import_packages([pack], tmp_path / "out")
    dest = tmp_path / "out" / "mfw.demo"
    manifest = check_gpack(dest)
    assert manifest.rdf.patterns == ["ontology.ttl", "rdf/ggen-inline-0.ttl"]
    assert manifest.rdf.prefixes == {"d": "urn:d:"}
    assert manifest.rdf.base == "urn:d:"
    assert (dest / "rdf/ggen-inline-0.ttl").read_text().startswith("@prefix d: <urn:d:> .")
    assert manifest.templates.patterns == ["templates/a.txt.tmpl"]
    assert (dest / "gpack.ggen.toml").read_text() == (pack / "gpack.toml").read_text()
    fields = [c.field for c in report.imported[0].changes]
    assert "[gpack] ggen_compat" in fields
    assert "[shapes]" in fields


def test_a_package_that_cannot_be_imported_stops_all_and_nothing_is_written(
    packages: Path, tmp_path: Path
) -> None:
    write(packages / "broken", {"package.toml": '[package]\nname = "b"\nversion = "1.0"\n'})
    write(packages / "bad-toml", {"package.toml": "[package\n"})
    out = tmp_path / "gpacks"
    with pytest.raises(GgenImportError) as caught:
        import_packages([packages], out)
    message = str(caught.value)
    assert "2 of 4 package(s) cannot be imported; nothing was written" in message
    assert "[package] version '1.0' is not a semantic version" in message
    assert f"{packages / 'bad-toml' / 'package.toml'}: not valid TOML" in message
    assert not out.exists()


def test_keep_going_writes_the_good_ones_and_exits_1(packages: Path, tmp_path: Path) -> None:
    write(packages / "broken", {"package.toml": '[package]\nversion = "1.0.0"\n'})
    out = tmp_path / "gpacks"
    result = CliRunner().invoke(market, ["import", str(packages), "-o", str(out), "--keep-going"])
    assert result.exit_code == 1
    assert "[package] name: required" in result.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "io.ggen.order-service",
        "io.ggen.shared-types",
    ]


def test_template_errors_name_the_package_file_not_a_staging_copy(tmp_path: Path) -> None:
    pack = write(
        tmp_path / "p",
        {
            "package.toml": '[package]\nname = "p"\nversion = "1.0.0"\n',
            "t.tmpl": "---\nto: x\nfor_eahc: 1\n---\n",
        },
    )
    with pytest.raises(GgenImportError) as caught:
        import_packages([pack], tmp_path / "out")
    assert f"{pack / 't.tmpl'}: front matter: for_eahc: unknown key" in str(caught.value)
    assert ".ggen-import-" not in str(caught.value)


def test_links_out_of_the_package_and_fifos_are_refused_by_name(tmp_path: Path) -> None:
    secret = write(tmp_path, {"secret.txt": "host secret"}) / "secret.txt"
    pack = write(tmp_path / "p", {"package.toml": '[package]\nname = "p"\nversion = "1.0.0"\n'})
    (pack / "leak.txt").symlink_to(secret)
    os.mkfifo(pack / "pipe")
    (pack / "inside.txt").symlink_to(pack / "package.toml")
    with pytest.raises(GgenImportError) as caught:
        import_packages([pack], tmp_path / "out")
    message = str(caught.value)
    assert "leak.txt: a link out of the package" in message
    assert "pipe: not a regular file" in message
    assert "inside.txt" not in message  # a link inside the package is copied as its file


def test_an_existing_gpack_is_replaced_only_with_force(packages: Path, tmp_path: Path) -> None:
    out = tmp_path / "gpacks"
    import_packages([packages / "shared-types"], out)
    (out / "io.ggen.shared-types" / "mine.txt").write_text("local change")
    with pytest.raises(GgenImportError, match=r"exists \(pass --force to replace it\)"):
        import_packages([packages / "shared-types"], out)
    assert (out / "io.ggen.shared-types" / "mine.txt").exists()
    import_packages([packages / "shared-types"], out, force=True)
    assert not (out / "io.ggen.shared-types" / "mine.txt").exists()
    assert load_manifest(out / "io.ggen.shared-types").version == "0.3.0"


def test_dry_run_writes_nothing(packages: Path, tmp_path: Path) -> None:
    out = tmp_path / "gpacks"
    report = import_packages([packages], out, dry_run=True)
    assert len(report.imported) == 2
    assert not out.exists()


def test_a_killed_imports_staging_is_removed_by_the_next(packages: Path, tmp_path: Path) -> None:
    out = tmp_path / "gpacks"
    leftover = write(out / ".ggen-import-killed" / "io.ggen.x", {"gpack.toml": "half"})
    import_packages([packages / "shared-types"], out)
    assert not leftover.parent.exists()
    kept = ["io.ggen.shared-types/gpack.toml", "io.ggen.shared-types/package.toml"]
    assert tree(out) == [".ggen-import.lock", "io.ggen.shared-types", *kept]


def test_a_folder_without_packages_is_one_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(market, ["import", str(tmp_path), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "no package.toml or gpack.toml here or in its subfolders" in result.output


def test_id_prefix_and_dependency_on_a_package_not_imported(tmp_path: Path) -> None:
    pack = write(
        tmp_path / "p",
        {
            "package.toml": (
                '[package]\nname = "My Pack"\nversion = "1.0.0"\ndependencies = ["core"]\n'
            )
        },
    )
    report = import_packages([pack], tmp_path / "out", id_prefix="com.acme")
    manifest = load_manifest(tmp_path / "out" / "com.acme.my-pack")
    assert manifest.dependencies == {"com.acme.core": "*"}
    why = next(c.reason for c in report.imported[0].changes if c.field.endswith("dependencies"))
    assert "not imported in this run" in why
