"""Templates: front matter, sandbox, RDF/SPARQL, output confinement, injection, atomicity."""

from __future__ import annotations

from pathlib import Path

import pytest

from ggen_market.errors import (
    OutputEscapeError,
    RdfError,
    SandboxViolationError,
    TemplateError,
)
from ggen_market.template.generate import GpackTemplate, generate, gpack_templates

GRAPH = """@prefix ex: <https://example.org/> .
ex:b ex:label "Bravo" ; ex:rank 2 .
ex:a ex:label "Alpha" ; ex:rank 1 .
ex:c ex:label "Charlie" ; ex:rank 3 .
"""


def gpack(
    root: Path, templates: dict[str, str], files: dict[str, str] | None = None
) -> list[GpackTemplate]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "gpack.toml").write_text(
        '[gpack]\nid = "io.test.tpl"\nname = "t"\nversion = "1.0.0"\n\n'
        '[rdf.prefixes]\nex = "https://example.org/"\n'
    )
    for name, text in {**templates, **{f"rdf/{k}": v for k, v in (files or {}).items()}}.items():
        path = root / (name if name.startswith("rdf/") else f"templates/{name}.tmpl")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return gpack_templates(root)


def one(tmp_path: Path, body: str, front: str = "to: out.txt", **files: str) -> GpackTemplate:
    return gpack(tmp_path / "g", {"t": f"---\n{front}\n---\n{body}"}, files)[0]


def snapshot(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): p.read_text()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


HOSTILE_BODIES = {
    "class mro": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "globals through cycler": "{{ cycler.__init__.__globals__.os.system('id') }}",
    "globals through lipsum": "{{ lipsum.__globals__['os'] }}",
    "self internals": "{{ self._TemplateReference__context }}",
    "mutate data": "{% set items = [1] %}{{ items.append(2) }}",
    "format string attack": "{{ '{0.__class__}'.format(gpack) }}",
    "mutate vars": "{{ gpack.update({'id': 'x'}) }}",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_BODIES))
def test_sandbox_refuses_unsafe_access(case: str, tmp_path: Path) -> None:
    template = one(tmp_path, HOSTILE_BODIES[case])
    out = tmp_path / "out"
    with pytest.raises(SandboxViolationError) as info:
        generate([template], out, {})
    assert str(template.path) in str(info.value)
    assert snapshot(out) == {}


@pytest.mark.parametrize(
    "body",
    [
        "{% include '/etc/passwd' %}",
        "{% include '../../../../../../etc/passwd' %}",
        "{% import 'os' as os %}",
    ],
)
def test_templates_cannot_read_files_outside_the_gpack(body: str, tmp_path: Path) -> None:
    with pytest.raises(SandboxViolationError, match="cannot include"):
        generate([one(tmp_path, body)], tmp_path / "out", {})


def test_builtins_that_reach_files_are_simply_undefined(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="'open' is undefined"):
        generate([one(tmp_path, "{{ open('/etc/passwd').read() }}")], tmp_path / "out", {})


def test_huge_range_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"(?i)range too big"):
        generate([one(tmp_path, "{{ range(10**9) | list | length }}")], tmp_path / "out", {})


def test_include_of_a_gpack_file_works(tmp_path: Path) -> None:
    templates = gpack(tmp_path / "g", {"main": "---\nto: x\n---\n[{% include 'partials/p.txt' %}]"})
    (tmp_path / "g/partials").mkdir()
    (tmp_path / "g/partials/p.txt").write_text("part")
    generate(templates, tmp_path / "out", {})
    assert (tmp_path / "out/x").read_text() == "[part]"


def test_undefined_variable_is_an_error_with_line_and_hint(tmp_path: Path) -> None:
    template = one(tmp_path, "line one\n{{ nmae }}\n", "to: x\nvars:\n  name: a")
    with pytest.raises(TemplateError) as info:
        generate([template], tmp_path / "out", {})
    message = str(info.value)
    assert f"{template.path}:7" in message  # body line 2 is line 7 of the file
    assert "'nmae' is undefined" in message
    assert "did you mean 'name'" in message
    missing = one(tmp_path / "2", "{{ project }}")
    with pytest.raises(TemplateError, match="pass --var project="):
        generate([missing], tmp_path / "out", {})


def test_vars_defaults_and_overrides(tmp_path: Path) -> None:
    front = "to: '{{ name | snake }}.txt'\nvars:\n  greeting: Hi\n  name: some user"
    template = one(tmp_path, "{{ greeting }}, {{ name | pascal }}!\n", front)
    generate([template], tmp_path / "a", {})
    assert snapshot(tmp_path / "a") == {"some_user.txt": "Hi, SomeUser!\n"}
    generate([template], tmp_path / "b", {"name": "ada lovelace"})
    assert snapshot(tmp_path / "b") == {"ada_lovelace.txt": "Hi, AdaLovelace!\n"}


@pytest.mark.parametrize(
    "to", ["../escape.txt", "/tmp/escape.txt", "a/../../escape.txt", "{{ '../' * 3 }}escape.txt"]
)
def test_to_cannot_escape_the_output_directory(to: str, tmp_path: Path) -> None:
    with pytest.raises(OutputEscapeError, match=r"outside the output directory|must be a path"):
        generate([one(tmp_path, "x", f'to: "{to}"')], tmp_path / "out", {})
    assert not (tmp_path / "escape.txt").exists()


def test_to_cannot_escape_through_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "link").symlink_to(outside)
    with pytest.raises(OutputEscapeError, match="outside the output directory"):
        generate([one(tmp_path, "x", "to: link/file.txt")], out, {})
    assert list(outside.iterdir()) == []


SELECT = "SELECT ?label ?rank WHERE { ?s ex:label ?label ; ex:rank ?rank }"


def test_sparql_rows_reach_the_body_deterministically(tmp_path: Path) -> None:
    front = (
        f'to: x\nrdf: [rdf/g.ttl]\nsparql:\n  rows: "{SELECT}"\n'
        f'  ordered: "{SELECT} ORDER BY DESC(?rank)"'
    )
    body = (
        "{% for r in sparql.rows %}{{ r.label }}={{ r.rank }} {% endfor %}"
        "|{{ sparql.ordered | map(attribute='label') | join(',') }}"
    )
    template = one(tmp_path, body, front, **{"g.ttl": GRAPH})
    generate([template], tmp_path / "a", {})
    generate([template], tmp_path / "b", {})
    text = (tmp_path / "a/x").read_text()
    assert text == "Alpha=1 Bravo=2 Charlie=3 |Charlie,Bravo,Alpha"
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")


def test_rdf_file_that_does_not_parse(tmp_path: Path) -> None:
    template = one(tmp_path, "x", "to: x\nrdf: [rdf/bad.ttl]", **{"bad.ttl": "ex:a ex:b"})
    with pytest.raises(RdfError, match=r"bad\.ttl: not valid turtle"):
        generate([template], tmp_path / "out", {})


def test_sparql_syntax_error_names_the_query(tmp_path: Path) -> None:
    front = "to: x\nrdf: [rdf/g.ttl]\nsparql:\n  broken: 'SELECT ?x WHERE { ?x ex:label }'"
    template = one(tmp_path, "x", front, **{"g.ttl": GRAPH})
    with pytest.raises(RdfError, match=r"sparql\.broken: SPARQL syntax error"):
        generate([template], tmp_path / "out", {})


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT * WHERE { SERVICE <http://127.0.0.1:9/sparql> { ?s ?p ?o } }", "SERVICE"),
        ("SELECT * FROM <http://127.0.0.1:9/g.ttl> WHERE { ?s ?p ?o }", "FROM clauses"),
        ("ASK { ?s ?p ?o }", "only SELECT"),
    ],
)
def test_queries_that_would_fetch_remote_data_are_refused(
    query: str, message: str, tmp_path: Path
) -> None:
    front = f"to: x\nrdf: [rdf/g.ttl]\nsparql:\n  q: '{query}'"
    with pytest.raises(RdfError, match=message):
        generate([one(tmp_path, "x", front, **{"g.ttl": GRAPH})], tmp_path / "out", {})


def test_query_files_of_the_gpack(tmp_path: Path) -> None:
    templates = gpack(
        tmp_path / "g",
        {
            "t": "---\nto: x\nrdf: [rdf/g.ttl]\nsparql:\n  q: queries/q.rq\n---\n"
            "{{ sparql.q | length }}"
        },
        {"g.ttl": GRAPH},
    )
    (tmp_path / "g/queries").mkdir()
    (tmp_path / "g/queries/q.rq").write_text(SELECT)
    generate(templates, tmp_path / "out", {})
    assert (tmp_path / "out/x").read_text() == "3"


def test_existing_files_force_and_unless_exists(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "x").write_text("mine\n")
    with pytest.raises(TemplateError, match="exists with different content"):
        generate([one(tmp_path / "1", "new\n", "to: x")], out, {})
    assert (out / "x").read_text() == "mine\n"
    actions = generate([one(tmp_path / "2", "new\n", "to: x\nunless_exists: true")], out, {})
    assert actions[0].action == "skip"
    actions = generate([one(tmp_path / "3", "new\n", "to: x")], out, {}, force=True)
    assert actions[0].action == "overwrite"
    assert (out / "x").read_text() == "new\n"
    actions = generate([one(tmp_path / "3", "new\n", "to: x")], out, {})
    assert actions[0].action == "unchanged"


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("append: true", "first\nanchor\nlast\nNEW\n"),
        ("prepend: true", "NEW\nfirst\nanchor\nlast\n"),
        ("before: '^anchor$'", "first\nNEW\nanchor\nlast\n"),
        ("after: '^anchor$'", "first\nanchor\nNEW\nlast\n"),
    ],
)
def test_injection_is_idempotent(where: str, expected: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "f").write_text("first\nanchor\nlast\n")
    template = one(tmp_path, "NEW\n", f"to: f\ninject: true\n{where}")
    assert generate([template], out, {})[0].action == "inject"
    assert (out / "f").read_text() == expected
    assert generate([template], out, {})[0].action == "unchanged"
    assert (out / "f").read_text() == expected


def test_skip_if_and_missing_anchor(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "f").write_text("done already\n")
    skip = one(tmp_path / "1", "NEW\n", "to: f\ninject: true\nappend: true\nskip_if: done")
    assert generate([skip], out, {})[0].action == "skip"
    anchored = one(tmp_path / "2", "NEW\n", "to: f\ninject: true\nafter: nowhere")
    with pytest.raises(TemplateError, match="no line matches after: 'nowhere'"):
        generate([anchored], out, {})


def test_all_or_nothing_across_templates(tmp_path: Path) -> None:
    templates = gpack(
        tmp_path / "g",
        {"a": "---\nto: a.txt\n---\nfine\n", "b": "---\nto: b.txt\n---\n{{ missing }}\n"},
    )
    out = tmp_path / "out"
    with pytest.raises(TemplateError):
        generate(templates, out, {})
    assert not out.exists() or snapshot(out) == {}


def test_inject_into_a_file_created_in_the_same_run(tmp_path: Path) -> None:
    templates = gpack(
        tmp_path / "g",
        {
            "a-create": '---\nto: m.py\n---\n"""Doc."""\n',
            "b-inject": '---\nto: m.py\ninject: true\nafter: \'^"""\'\n---\nX = 1\n',
        },
    )
    generate(templates, tmp_path / "out", {})
    assert (tmp_path / "out/m.py").read_text() == '"""Doc."""\nX = 1\n'


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    actions = generate([one(tmp_path, "x")], tmp_path / "out", {}, dry_run=True)
    assert [(a.rel, a.action) for a in actions] == [("out.txt", "create")]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("front", "expected"),
    [
        ("to: x\nunles_exists: true", "unles_exists: unknown key (did you mean 'unless_exists'?)"),
        ("to: x\ninject: true", "inject: true needs exactly one of before, after, append, prepend"),
        ("to: x\nappend: true", "append only applies with inject: true"),
        ("to: x\nforce: true\nunless_exists: true", "contradict"),
        ("to: !!python/object/apply:os.system ['echo pwned']", "not valid YAML"),
        ("- a list", "must be a YAML mapping"),
    ],
)
def test_front_matter_errors(front: str, expected: str, tmp_path: Path) -> None:
    template = one(tmp_path, "x", front)
    with pytest.raises(TemplateError) as info:
        generate([template], tmp_path / "out", {})
    assert str(template.path) in str(info.value)
    assert expected in str(info.value)


@pytest.mark.parametrize("key", ["skip_if", "before", "after"])
def test_a_catastrophically_backtracking_anchor_ends_with_an_error(
    key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ggen_market.template.generate.PATTERN_SECONDS", 0.5)
    out = tmp_path / "out"
    out.mkdir()
    (out / "f").write_text("a" * 40 + "b\n")  # (a+)+$ would try 2^40 ways on this line
    where = "" if key != "skip_if" else "\nappend: true"
    hostile = one(tmp_path / key, "NEW\n", f"to: f\ninject: true\n{key}: '(a+)+$'{where}")
    with pytest.raises(TemplateError, match=rf"{key}: pattern '\(a\+\)\+\$' took over 0.5 s"):
        generate([hostile], out, {})
    assert (out / "f").read_text() == "a" * 40 + "b\n"
