"""A hostile template ends in a TemplateError: huge values, endless loops, huge output and a
front matter that is huge, deep or holds a 5,000-digit number are refused, in a dry run too."""

from __future__ import annotations

import threading
import tracemalloc
from pathlib import Path

import pytest

from ggen_market.errors import TemplateError
from ggen_market.template.generate import GpackTemplate, generate, gpack_templates


def _one(tmp_path: Path, body: str, front: str = "to: out.txt") -> list[GpackTemplate]:
    root = tmp_path / "g"
    (root / "templates").mkdir(parents=True)
    (root / "gpack.toml").write_text('[gpack]\nid = "io.test.lim"\nname = "t"\nversion = "1.0.0"\n')
    (root / "templates" / "t.tmpl").write_text(f"---\n{front}\n---\n{body}")
    return gpack_templates(root)


HUGE_VALUES = {
    "string repeat": "{{ 'a' * 10**9 }}",
    "list repeat": "{{ ([1] * 10**9) | length }}",
    "power": "{{ 10 ** (10 ** 8) }}",
    "printf width": "{{ '%999999999d' % 1 }}",
    "format filter": "{{ '%999999999d' | format(1) }}",
    "format method": "{{ '{:>999999999}'.format(1) }}",
    "center filter": "{{ 'a' | center(10**9) }}",
    "indent filter": "{{ 'a\nb' | indent(10**9) }}",
    "ljust method": "{{ 'a'.ljust(10**9) }}",
    "replace method": "{% set s = 'a' * 5000 %}{{ s.replace('a', s) }}",
    "lipsum": "{{ lipsum(10**6) }}",
    "concatenation": "{% set s = 'a' * 10**7 %}{{ (s ~ s) + (s + s) }}",
}


@pytest.mark.parametrize("body", HUGE_VALUES.values(), ids=HUGE_VALUES.keys())
def test_huge_values_are_refused_in_a_dry_run(tmp_path: Path, body: str) -> None:
    templates = _one(tmp_path, body)
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError, match=r"t\.tmpl.*(limit|too large|digits|lipsum)"):
            generate(templates, tmp_path / "out", {}, dry_run=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024 * 1024  # nothing near a GiB was built
    assert not (tmp_path / "out").exists()


def test_output_past_the_cap_is_refused(tmp_path: Path) -> None:
    body = "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}"  # 100 MB
    with pytest.raises(TemplateError, match="output larger than 16777216 characters"):
        generate(_one(tmp_path, body), tmp_path / "out", {})
    assert not (tmp_path / "out" / "out.txt").exists()


LOOPS = {
    "nested range": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
    "{% endfor %}",
    "nested lists": "{% set l = range(100000) | list %}{% for i in l %}{% for j in l %}"
    "{% endfor %}{% endfor %}",
}


@pytest.mark.parametrize("body", LOOPS.values(), ids=LOOPS.keys())
def test_an_endless_render_ends_at_the_timeout(
    tmp_path: Path, body: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GGEN_TEMPLATE_TIMEOUT", "1")
    with pytest.raises(TemplateError, match="longer than 1 s"):
        generate(_one(tmp_path, body), tmp_path / "out", {})


def test_an_endless_render_ends_in_a_thread_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off the main thread there is no interval timer: the calls a loop makes are checked."""
    monkeypatch.setenv("GGEN_TEMPLATE_TIMEOUT", "1")
    errors: list[BaseException] = []

    def render() -> None:
        try:
            generate(_one(tmp_path, LOOPS["nested range"]), tmp_path / "out", {})
        except TemplateError as exc:
            errors.append(exc)

    worker = threading.Thread(target=render, daemon=True)
    worker.start()
    worker.join(60)
    assert errors
    assert "longer than 1 s" in str(errors[0])


FRONT_MATTERS = {
    "5000-digit integer": f"to: out.txt\nvars:\n  n: {'9' * 5000}",
    "deep nesting": "to: out.txt\nvars:\n  x: " + "[" * 5000 + "]" * 5000,
    "billion laughs": "to: out.txt\nvars:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n"
        for i in range(8)
    ),
}


@pytest.mark.parametrize("front", FRONT_MATTERS.values(), ids=FRONT_MATTERS.keys())
def test_hostile_front_matter_is_a_template_error(tmp_path: Path, front: str) -> None:
    with pytest.raises(TemplateError, match=r"t\.tmpl: front matter"):
        generate(_one(tmp_path, "x", front), tmp_path / "out", {}, dry_run=True)


def test_ordinary_templates_still_render(tmp_path: Path) -> None:
    body = (
        "{{ 'ab' * 3 }} {{ 2 ** 10 }} {{ '%05d' % 42 }} {{ 'x' | center(5) }}|"
        "{{ '{:>4}'.format(7) }} {{ lipsum(1, html=False) | length > 0 }}"
        " {{ 'a-b'.replace('-', '_') }} {{ 'long text here' | truncate(9, leeway=0) }}\n"
    )
    generate(_one(tmp_path, body), tmp_path / "out", {})
    assert (tmp_path / "out" / "out.txt").read_text() == (
        "ababab 1024 00042   x  |   7 True a_b long...\n"
    )
