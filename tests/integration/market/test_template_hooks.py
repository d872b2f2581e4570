"""Templates' sh_before/sh_after commands run in a cleanroom on the output directory only.

The confinement tests try to break out (write beside the output, read a host file, reach a
server on 127.0.0.1) on every local backend, under the default policy.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ggen_market.cli import template
from ggen_market.errors import TemplateError
from ggen_market.template.generate import generate
from ggen_market.template.hooks import HookRun
from tests.integration.engine.conftest import LOCAL_BACKENDS, require_backend
from tests.unit.market.test_templates import one

pytestmark = pytest.mark.integration


@pytest.fixture(params=LOCAL_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    require_backend(request.param)
    return str(request.param)


@pytest.fixture
def server() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 that records whether anyone reached it."""
    reached: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            reached.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"reached")

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    assert not reached, f"a hook reached the host's server: {reached}"


def test_sh_before_runs_first_and_the_template_sees_what_it_made(
    tmp_path: Path, backend: str
) -> None:
    front = (
        "to: gen/list.txt\ninject: true\nappend: true\nvars:\n  name: two\n"
        "sh_before: 'mkdir -p gen && echo one > gen/list.txt && echo made the list'\n"
        "sh_after: 'wc -l < gen/list.txt'"
    )
    records: list[HookRun] = []
    generate(
        [one(tmp_path, "{{ name }}\n", front)],
        tmp_path / "out",
        {},
        hook_backend=backend,
        on_hook=records.append,
    )
    assert (tmp_path / "out" / "gen" / "list.txt").read_text() == "one\ntwo\n"
    assert [(r.hook.key, r.exit_code, r.stdout.strip()) for r in records] == [
        ("sh_before", 0, "made the list"),
        ("sh_after", 0, "2"),
    ]
    assert {(r.policy, r.backend) for r in records} == {("strict", backend)}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gen"]  # no HOME left


def test_a_hook_writes_only_into_the_output_and_reaches_nothing(
    tmp_path: Path, backend: str, server: str
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    command = (
        f"echo pwned > {victim}; echo pwned > ../beside.txt; cat {secret};"
        f" python3 -c \"import urllib.request as u; print(u.urlopen('{server}').read())\";"
        " touch /etc/ggen-hook; echo done > inside.txt"
    )
    records: list[HookRun] = []
    generate(
        [one(tmp_path, "x", f"to: out.txt\nsh_after: {json.dumps(command)}")],
        tmp_path / "out",
        {},
        hook_backend=backend,
        on_hook=records.append,
    )
    assert victim.read_text() == "untouched"
    assert not (tmp_path / "beside.txt").exists()
    assert not Path("/etc/ggen-hook").exists()
    output = records[0].stdout + records[0].stderr
    assert "host secret" not in output
    assert f"cat: {secret}: No such file or directory" in output  # hidden, not just unreadable
    assert "URLError" in output  # python ran and its request failed
    assert "reached" not in output
    assert (tmp_path / "out" / "inside.txt").read_text() == "done\n"


def test_a_failing_sh_before_names_template_and_hook_and_writes_nothing(tmp_path: Path) -> None:
    require_backend("bwrap")
    front = "to: out.txt\nsh_before: 'echo building >&2; exit 3'"
    template_ = one(tmp_path, "x", front)
    with pytest.raises(TemplateError) as caught:
        generate([template_], tmp_path / "out", {}, hook_backend="bwrap")
    message = str(caught.value)
    assert message.startswith(f"{template_.path}: front matter: sh_before: `echo building >&2;")
    assert "failed with exit code 3 in a cleanroom (policy strict, backend bwrap)" in message
    assert "no generated file was written; its output ends:\n    building" in message
    assert not (tmp_path / "out" / "out.txt").exists()


def test_a_failing_sh_after_says_the_files_were_written(tmp_path: Path) -> None:
    require_backend("bwrap")
    template_ = one(tmp_path, "x", "to: out.txt\nsh_after: 'false'")
    with pytest.raises(TemplateError, match=r"sh_after: `false` failed with exit code 1.*"
                       r"the generated files were written before it ran"):  # fmt: skip
        generate([template_], tmp_path / "out", {}, hook_backend="bwrap")
    assert (tmp_path / "out" / "out.txt").read_text() == "x"


def test_a_template_that_fails_to_render_runs_no_hook(tmp_path: Path) -> None:
    good = one(tmp_path, "x", "to: a.txt\nsh_before: 'touch ran'")
    bad = one(tmp_path / "2", "{{ missing }}", "to: b.txt")
    with pytest.raises(TemplateError, match="'missing' is undefined"):
        generate([good, bad], tmp_path / "out", {})
    assert not (tmp_path / "out" / "ran").exists()


def test_the_cli_shows_hooks_with_their_output_and_dry_run_runs_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_backend("bwrap")
    pack = one(tmp_path, "x", "to: out.txt\nsh_after: 'echo hello from {{ gpack.id }}'")
    project = tmp_path / "project"
    monkeypatch.setattr("ggen_market.template.generate.find_templates", lambda root, ref: [pack])
    out = tmp_path / "out"
    args = ["generate", "io.test.tpl", "--project", str(project), "--out", str(out)]
    dry = CliRunner().invoke(template, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would run sh_after of io.test.tpl:t in a cleanroom (policy strict):" in dry.output
    assert not out.exists()
    done = CliRunner().invoke(template, [*args, "--hook-backend", "bwrap"])
    assert done.exit_code == 0, done.output
    assert "ran sh_after of io.test.tpl:t in a cleanroom (policy strict, backend bwrap)" in (
        done.output
    )
    assert "  | hello from io.test.tpl" in done.output
    as_json = CliRunner().invoke(template, [*args, "--json", "--force", "--hook-policy", "locked"])
    hooks = json.loads(as_json.output)["hooks"]
    assert [(h["hook"], h["policy"], h["stdout"]) for h in hooks] == [
        ("sh_after", "locked", "hello from io.test.tpl\n")
    ]


def test_the_docs_example_runs_as_written() -> None:
    require_backend("bwrap")
    text = (Path(__file__).resolve().parents[3] / "docs" / "templates.md").read_text()
    start = text.index("## Commands in templates: `sh_before`, `sh_after`")
    section = text[start : text.index("\n## ", start + 1)]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "<docs example>", "exec"), {"__name__": "__docs__"})
