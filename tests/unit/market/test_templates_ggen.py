"""Templates written for ggen (Tera) render as they are: names, filters, tags, front matter."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ggen_market.errors import TemplateError
from ggen_market.template.generate import generate

from .test_templates import GRAPH, gpack, one, snapshot


def render(tmp_path: Path, body: str, front: str = "to: out.txt", **variables: str) -> str:
    template = one(tmp_path, body, front, **{"g.ttl": GRAPH})
    out = tmp_path / "out"
    generate([template], out, variables)
    return (out / "out.txt").read_text()


QUERY = "SELECT ?label ?rank WHERE { ?s ex:label ?label ; ex:rank ?rank } ORDER BY ?rank"


def test_query_rows_are_bound_at_the_top_level_and_as_sparql_results(tmp_path: Path) -> None:
    front = f"to: out.txt\nrdf: [rdf/g.ttl]\nsparql:\n  rows: '{QUERY}'"
    body = (
        "{% for row in rows %}{{ row.label }} {% endfor %}|{{ results | length }}"
        "|{{ sparql_results.rows[0].label }}|{{ sparql.rows[2].label }}"
    )
    assert render(tmp_path, body, front) == "Alpha Bravo Charlie |3|Alpha|Charlie"


def test_a_query_given_as_a_string_or_a_list_gets_ggen_names(tmp_path: Path) -> None:
    front = f"to: out.txt\nrdf: rdf/g.ttl\nsparql: '{QUERY}'"
    assert render(tmp_path, "{{ default[0].label }} {{ results[1].label }}", front) == (
        "Alpha Bravo"
    )
    listed = f"to: out.txt\nrdf: [rdf/g.ttl]\nsparql:\n  - '{QUERY}'\n  - '{QUERY} LIMIT 1'"
    assert render(tmp_path / "2", "{{ query_0 | length }}{{ query_1 | length }}", listed) == "31"


def test_a_variable_keeps_its_name_over_a_query_of_the_same_name(tmp_path: Path) -> None:
    front = f"to: out.txt\nrdf: [rdf/g.ttl]\nsparql:\n  rows: '{QUERY}'\nvars:\n  rows: mine"
    assert render(tmp_path, "{{ rows }} {{ sparql.rows | length }}", front) == "mine 3"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{{ missing | default(value="d") }}', "d"),
        ('{{ missing | default("j") }}', "j"),
        ('{{ "a-b-c" | replace(from="-", to="_") }}', "a_b_c"),
        ('{{ "a-b" | replace("-", "+") }}', "a+b"),
        ('{{ "a,b,c" | split(pat=",") | join(sep="+") }}', "a+b+c"),
        ('{{ 0 | date(format="%Y-%m-%d") }}', "1970-01-01"),
        ('{{ "2024-05-06T07:08:09Z" | date(format="%d/%m %H") }}', "06/05 07"),
        ('{{ {"k": 1} | get(key="k") }}{{ {} | get(key="x", default=2) }}', "12"),
        ('{{ "x  " | trim_end }}|{{ "  x" | trim_start }}|', "x|x|"),
        ("{{ '\"q\"' | trim_matches(pat='\"') }}", "q"),
        ('{{ {"b": [1], "a": "x"} | json_encode }}', '{"a": "x", "b": [1]}'),
        (
            '{{ "Hello World" | snake_case }} {{ "hello world" | pascal_case }}',
            "hello_world HelloWorld",
        ),
        ('{{ "https://x.org/o#Thing" | local }}', "Thing"),
        ('{{ "abc" is starting_with("a") }} {{ "abc" is ending_with("z") }}', "True False"),
        ("{% for i in range(end=3) %}{{ i }}{% endfor %}", "012"),
    ],
)
def test_tera_filters_tests_and_functions(tmp_path: Path, body: str, expected: str) -> None:
    assert render(tmp_path, body) == expected


def test_filter_and_group_by_take_named_attributes(tmp_path: Path) -> None:
    items = "[{'k': 'a', 'n': 1}, {'k': 'b', 'n': 2}, {'k': 'a', 'n': 3}]"
    body = (
        f"{{% set items = {items} %}}"
        "{{ items | filter(attribute='k', value='a') | map(attribute='n') | join(sep=',') }}|"
        "{% for key, group in items | group_by(attribute='k') %}{{ key }}={{ group | length }} "
        "{% endfor %}"
    )
    assert render(tmp_path, body) == "1,3|a=2 b=1 "


def test_set_global_break_continue_and_self_macros(tmp_path: Path) -> None:
    body = (
        "{% set_global total = 0 %}"
        "{% for i in [1, 2, 3, 4, 5] %}{% if i == 2 %}{% continue %}{% endif %}"
        "{% if i == 5 %}{% break %}{% endif %}{% set_global total = total + i %}{% endfor %}"
        "{% macro twice(text) %}{{ text }}{{ text }}{% endmacro %}"
        "total={{ total }} {{ self::twice(text='ab') }} std::fs::read()"
    )
    assert render(tmp_path, body) == "total=8 abab std::fs::read()"


def test_sparql_functions_query_the_graph_at_render_time(tmp_path: Path) -> None:
    front = f"to: out.txt\nrdf: [rdf/g.ttl]\nsparql:\n  rows: '{QUERY}'"
    body = (
        "{% set top = sparql(query='SELECT ?l WHERE { ex:c ex:label ?l }') %}{{ top[0].l }} "
        "{{ sparql_first(results=sparql_results.rows, column='label') }} "
        "{{ sparql_count(results=rows) }} {{ sparql_count() }}"
    )
    assert render(tmp_path, body, front) == "Charlie Alpha 3 3"


def test_queries_bind_the_prefixes_the_graph_declares(tmp_path: Path) -> None:
    graph = "@prefix my: <https://mine.example/> .\nmy:x my:name 'X' .\n"
    front = "to: out.txt\nrdf: [rdf/m.ttl]\nsparql:\n  rows: 'SELECT ?n WHERE { ?s my:name ?n }'"
    template = one(tmp_path, "{{ rows[0].n }}", front, **{"m.ttl": graph})
    generate([template], tmp_path / "out", {})
    assert (tmp_path / "out" / "out.txt").read_text() == "X"


def test_rdf_paths_are_found_beside_the_template(tmp_path: Path) -> None:
    root = tmp_path / "g"
    [template] = gpack(
        root,
        {"sub/t": f"---\nto: out.txt\nrdf: local.ttl\nsparql:\n  rows: '{QUERY}'\n---\n"
         "{{ rows | length }}"},
    )  # fmt: skip
    (root / "templates" / "sub" / "local.ttl").write_text(GRAPH)
    generate([template], tmp_path / "out", {})
    assert (tmp_path / "out" / "out.txt").read_text() == "3"


def test_without_rdf_a_template_reads_the_gpacks_graph(tmp_path: Path) -> None:
    front = f"to: out.txt\nsparql:\n  rows: '{QUERY}'"
    assert render(tmp_path, "{{ rows | map(attribute='label') | join(', ') }}", front) == (
        "Alpha, Bravo, Charlie"
    )


def test_rdf_inline_with_prefixes_and_base(tmp_path: Path) -> None:
    front = (
        "to: out.txt\nprefixes:\n  zz: 'https://zz.example/'\nbase: 'https://zz.example/'\n"
        'rdf_inline:\n  - \'zz:a zz:name "Inline" . <rel> zz:name "Based" .\'\n'
        "sparql:\n  rows: 'SELECT ?s ?n WHERE { ?s zz:name ?n } ORDER BY ?n'"
    )
    body = "{% for r in rows %}{{ r.n }}={{ r.s }} {% endfor %}"
    assert render(tmp_path, body, front) == (
        "Based=https://zz.example/rel Inline=https://zz.example/a "
    )


def test_for_each_renders_one_file_per_row_with_a_dynamic_to(tmp_path: Path) -> None:
    front = f"to: 'items/{{{{ label | lower }}}}.txt'\nsparql:\n  items: '{QUERY}'\nfor_each: items"
    template = one(tmp_path, "{{ label }} #{{ row.rank }}", front, **{"g.ttl": GRAPH})
    actions = generate([template], tmp_path / "out", {})
    assert [a.rel for a in actions] == ["items/alpha.txt", "items/bravo.txt", "items/charlie.txt"]
    assert snapshot(tmp_path / "out")["items/bravo.txt"] == "Bravo #2"


def test_for_each_must_name_a_query(tmp_path: Path) -> None:
    template = one(tmp_path, "x", f"to: x\nsparql:\n  items: '{QUERY}'\nfor_each: itmes")
    with pytest.raises(TemplateError, match=r"for_each: 'itmes' names no query.*items"):
        generate([template], tmp_path / "out", {})


def test_skip_empty_writes_nothing_for_an_empty_body(tmp_path: Path) -> None:
    template = one(tmp_path, "{% if false %}x{% endif %}\n", "to: out.txt\nskip_empty: true")
    [action] = generate([template], tmp_path / "out", {})
    assert (action.action, action.reason) == ("skip", "empty output (skip_empty)")
    assert not (tmp_path / "out" / "out.txt").exists()


def test_freeze_policy_always_keeps_an_existing_file(tmp_path: Path) -> None:
    template = one(tmp_path, "new", "to: out.txt\nfreeze_policy: always")
    out = tmp_path / "out"
    out.mkdir()
    (out / "out.txt").write_text("mine")
    [action] = generate([template], out, {}, force=True)
    assert action.action == "skip"
    assert "freeze_policy: always" in action.reason
    assert (out / "out.txt").read_text() == "mine"


def test_freeze_policy_checksum_regenerates_until_a_person_edits_the_file(tmp_path: Path) -> None:
    front = "to: out.txt\nforce: true\nfreeze_policy: checksum\nfreeze_slots_dir: .freeze"
    template = one(tmp_path, "{{ v }}", front)
    out = tmp_path / "out"
    generate([template], out, {"v": "one"})
    slot = out / ".freeze" / "out.txt.sha256"
    assert slot.read_text() == hashlib.sha256(b"one").hexdigest() + "\n"
    generate([template], out, {"v": "two"})  # untouched since generated: regenerated
    assert (out / "out.txt").read_text() == "two"
    (out / "out.txt").write_text("edited by hand")
    actions = generate([template], out, {"v": "three"})
    assert actions[0].action == "skip"
    assert "edited since" in actions[0].reason
    assert (out / "out.txt").read_text() == "edited by hand"


def test_freeze_policy_checksum_needs_a_slots_dir(tmp_path: Path) -> None:
    template = one(tmp_path, "x", "to: x\nfreeze_policy: checksum")
    with pytest.raises(TemplateError, match="checksum needs freeze_slots_dir"):
        generate([template], tmp_path / "out", {})


def test_determinism_refuses_output_that_changes_between_renders(tmp_path: Path) -> None:
    template = one(tmp_path, "{{ now() }}", "to: out.txt\ndeterminism: true")
    with pytest.raises(TemplateError, match="determinism: rendering twice gave different"):
        generate([template], tmp_path / "out", {})
    assert not (tmp_path / "out" / "out.txt").exists()


def test_now_is_source_date_epoch_when_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")
    template = one(
        tmp_path, '{{ now() }} {{ "now" | date(format="%F") }}', "to: out.txt\ndeterminism: true"
    )
    generate([template], tmp_path / "out", {})
    assert (tmp_path / "out" / "out.txt").read_text() == "1970-01-02T00:00:00+00:00 1970-01-02"


def test_shape_files_must_exist(tmp_path: Path) -> None:
    template = one(tmp_path, "x", "to: x\nshape: shapes/missing.ttl")
    with pytest.raises(TemplateError, match=r"shape: no file 'shapes/missing.ttl'"):
        generate([template], tmp_path / "out", {})


def test_get_env_does_not_read_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "s3cret")
    assert render(tmp_path, '{{ get_env(name="SECRET_TOKEN", default="none") }}') == "none"
    with pytest.raises(TemplateError, match="templates do not read the environment"):
        render(tmp_path / "2", '{{ get_env(name="SECRET_TOKEN") }}')


def test_the_sparql_function_does_not_expose_the_graph(tmp_path: Path) -> None:
    front = f"to: out.txt\nrdf: [rdf/g.ttl]\nsparql:\n  rows: '{QUERY}'"
    with pytest.raises(TemplateError, match=r"refused by the template sandbox"):
        render(tmp_path, "{{ sparql._run.__closure__ }}", front)


def test_an_undefined_name_close_to_a_query_points_at_it(tmp_path: Path) -> None:
    front = f"to: out.txt\nrdf: [rdf/g.ttl]\nsparql:\n  rows: '{QUERY}'"
    with pytest.raises(TemplateError, match=r"'row' is undefined \(did you mean `sparql.rows`\?\)"):
        render(tmp_path, "{{ row.label }}", front)


def test_without_to_the_output_is_named_after_the_template(tmp_path: Path) -> None:
    # ggen takes such a template's output path from its command line (-o)
    template = one(tmp_path, "body", "description: no to")
    generate([template], tmp_path / "out", {})
    assert (tmp_path / "out" / "t").read_text() == "body"


def test_keys_of_other_tools_are_ignored_with_a_warning_misspellings_are_errors(
    tmp_path: Path,
) -> None:
    template = one(tmp_path, "x", "to: x.txt\nauthor: ggen core team\ninput_type: rdf")
    warnings: list[str] = []
    generate([template], tmp_path / "out", {}, on_warning=warnings.append)
    assert warnings == [
        f"{template.path}: front matter: {key}: unknown key ignored (not a key of this front"
        " matter; ggen ignores it too)"
        for key in ("author", "input_type")
    ]
    typo = one(tmp_path / "2", "x", "to: x.txt\nfor_eahc: rows")
    message = r"for_eahc: unknown key \(did you mean 'for_each'\?\)"
    with pytest.raises(TemplateError, match=message):
        generate([typo], tmp_path / "out2", {})
