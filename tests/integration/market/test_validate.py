"""``ggen market validate``: real cleanrooms (bubblewrap), real archives, signed statements.

Each promise gets a pack that tries to break it: a template writing outside its output, a step
that hangs, a step reaching a listener on the host's 127.0.0.1, a step reading a host file.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytest_cleanroom.attest.cli import attest
from tests.integration.engine.conftest import require_backend

from .conftest import REPO, ggen, write_gpack

pytestmark = pytest.mark.integration

EXAMPLES = sorted(p.name for p in (REPO / "example_gpacks").iterdir() if p.is_dir())


@pytest.fixture(autouse=True)
def _bwrap() -> None:
    require_backend("bwrap")


@pytest.fixture
def key(tmp_path: Path) -> Path:
    result = CliRunner().invoke(attest, ["keygen", str(tmp_path / "signing.pem")])
    assert result.exit_code == 0, result.output
    return tmp_path / "signing.pem"


def validate(target: Path | str, *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    result = ggen("market", "validate", str(target), "--json", *extra)
    return result.exit_code, json.loads(result.stdout)


def checks(report: dict, kind: str) -> list[dict]:  # type: ignore[type-arg]
    return [c for c in report["checks"] if c["kind"] == kind]


@pytest.fixture
def host_secret(tmp_path: Path) -> Iterator[Path]:
    """A file in the host's /root (hidden under strict) that holds ``host secret``."""
    secret = Path("/root") / f".ggen-validate-secret-{os.getpid()}-{tmp_path.name}"
    secret.write_text("host secret\n")
    yield secret
    secret.unlink()


def verify(envelope: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(attest, ["verify", str(envelope), *extra])
    return result.exit_code, result.output


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_gpack_validates_and_its_statement_verifies(
    name: str, key: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    statement = tmp_path / "statement.intoto.json"
    code, report = validate(REPO / "example_gpacks" / name, "--signing-key", str(key),
                            "--statement", str(statement))  # fmt: skip
    assert code == 0, json.dumps(report, indent=2)
    assert report["result"] == "PASSED"
    assert report["policy"]["name"].startswith("strict")
    assert report["backend"] in ("bwrap", "unshare")
    assert [c["outcome"] for c in report["checks"]].count("failed") == 0
    assert checks(report, "install")[0]["outcome"] == "passed"
    code, output = verify(statement, "--key", f"{key}.pub")
    assert code == 0, output
    payload = json.loads(base64.b64decode(json.loads(statement.read_text())["payload"]))
    assert payload["subject"][0]["digest"]["sha256"] == report["archive_sha256"]
    assert payload["predicate"]["policy"]["digest"] == report["policy"]["digest"]
    assert payload["predicate"]["tool"]["ggen"]


def test_the_statement_names_exactly_the_archive_and_a_changed_byte_fails(
    key: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    pack = REPO / "example_gpacks" / "python-project-basics"
    folder = tmp_path / "dist"
    folder.mkdir()
    archive = folder / "io.ggen.python.project-basics-1.2.0.tar.gz"
    packed = ggen("market", "pack", str(pack), "-o", str(archive))
    assert packed.exit_code == 0, packed.output
    statement = tmp_path / "s.intoto.json"
    code, _ = validate(pack, "--signing-key", str(key), "--statement", str(statement))
    assert code == 0
    assert verify(statement, "--key", f"{key}.pub", "--workspace", str(folder))[0] == 0
    archive.write_bytes(archive.read_bytes() + b"\0")
    code, output = verify(statement, "--key", f"{key}.pub", "--workspace", str(folder))
    assert code == 1
    assert "subject file changed" in output
    other = tmp_path / "other.pem"
    CliRunner().invoke(attest, ["keygen", str(other)])
    code, output = verify(statement, "--key", f"{other}.pub")
    assert code == 1
    assert "not signed by the trusted key" in output


def test_a_template_writing_outside_its_output_fails_validation(
    tmp_path: Path, env: dict[str, str]
) -> None:
    pack = write_gpack(tmp_path / "src", "io.test.escape", "1.0.0", files={
        "templates/ok.tmpl": "---\nto: ok.txt\n---\nfine\n",
        "templates/escape.tmpl": "---\nto: ../project/planted.txt\n---\nplanted\n",
    })  # fmt: skip
    code, report = validate(pack)
    assert code == 1
    assert report["result"] == "FAILED"
    [confinement] = checks(report, "confinement")
    assert confinement["outcome"] == "failed"
    assert "leaves the output directory" in confinement["detail"]
    assert "outside" in checks(report, "render")[0]["outputTail"]


def hook_pack(root: Path, pack_id: str, hook: str, extra: str = "") -> Path:
    """A gpack of one template whose ``sh_after`` is ``hook``."""
    return write_gpack(root, pack_id, "1.0.0", files={
        "templates/a.tmpl": f"---\nto: a.txt\nsh_after: {json.dumps(hook)}\n---\nfine\n",
    }, extra=extra)  # fmt: skip


def test_hooks_doing_legitimate_work_run_in_the_validation_cleanroom_and_pass(
    tmp_path: Path, key: Path, env: dict[str, str]
) -> None:
    hook = "mkdir -p gen && echo made > gen/by-hook.txt && test -f a.txt"
    pack = hook_pack(tmp_path / "src", "io.test.goodhook", hook, extra=(
        '[validation]\nsteps = [{ name = "hook output", run = "grep -x made gen/by-hook.txt" }]\n'
    ))  # fmt: skip
    statement = tmp_path / "s.intoto.json"
    code, report = validate(pack, "--signing-key", str(key), "--statement", str(statement))
    assert code == 0, json.dumps(report, indent=2)
    [render] = checks(report, "render")
    assert "1 sh_before/sh_after hook(s) ran in this cleanroom" in render["detail"]
    assert checks(report, "step")[0]["outcome"] == "passed"  # the hook's file was there
    hooks = report["hooks"]
    assert hooks["ran"] == 1
    assert hooks["policy"] == report["policy"]
    assert "the validation's cleanroom" in hooks["confinement"]
    assert verify(statement, "--key", f"{key}.pub")[0] == 0
    payload = json.loads(base64.b64decode(json.loads(statement.read_text())["payload"]))
    assert payload["predicate"]["hooks"] == hooks


def test_hooks_that_ran_are_counted_when_one_fails(tmp_path: Path, env: dict[str, str]) -> None:
    """A template whose sh_before succeeds and whose sh_after fails: two hooks ran, and the
    report says so (the failure's JSON once dropped the hooks, and the count read 0)."""
    pack = write_gpack(tmp_path / "src", "io.test.failhook", "1.0.0", files={
        "templates/a.tmpl": "---\nto: a.txt\nsh_before: echo before\nsh_after: exit 3\n---\nx\n",
    })  # fmt: skip
    code, report = validate(pack)
    assert code != 0
    [render] = checks(report, "render")
    assert render["outcome"] == "failed"
    assert report["hooks"]["ran"] == 2
    assert "2 sh_before/sh_after hook(s) ran in this cleanroom" in render["detail"]


def test_a_template_command_writing_outside_fails_validation_and_plants_nothing(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """A template's sh_after writing beside its output (in the validation's workspace) and onto
    the host: validation fails and neither file exists afterwards."""
    host_file = tmp_path / "host-planted.txt"
    beside = hook_pack(tmp_path / "a", "io.test.beside", "echo planted > ../project/planted.txt")
    code, report = validate(beside)
    assert code == 1
    assert report["result"] == "FAILED"
    [confinement] = checks(report, "confinement")
    assert confinement["outcome"] == "failed"
    assert "project/planted.txt" in confinement["detail"]
    onto_host = hook_pack(tmp_path / "b", "io.test.host", f"echo planted > {host_file}")
    code, report = validate(onto_host)
    assert code == 1
    [render] = checks(report, "render")
    assert render["outcome"] == "failed"
    assert "sh_after" in render["outputTail"]
    assert not host_file.exists()
    assert not list(tmp_path.rglob("planted.txt"))


def test_a_template_command_cannot_read_the_host_or_reach_the_network_in_validation(
    tmp_path: Path, env: dict[str, str], listener: tuple[int, list[bytes]], host_secret: Path
) -> None:
    port, seen = listener
    code, report = validate(hook_pack(tmp_path / "a", "io.test.hooknet", connect_command(port)))
    assert code == 1
    [render] = checks(report, "render")
    assert render["outcome"] == "failed"
    assert "ConnectionRefusedError" in render["outputTail"]
    assert seen == []  # the listener never saw a connection
    code, report = validate(hook_pack(tmp_path / "b", "io.test.hookread", f"cat {host_secret}"))
    assert code == 1
    [render] = checks(report, "render")
    assert "No such file or directory" in render["outputTail"]  # /root is hidden
    assert "host secret" not in json.dumps(report)


def test_a_hanging_step_is_killed_and_fails_the_validation(
    tmp_path: Path, env: dict[str, str]
) -> None:
    pack = write_gpack(tmp_path / "src", "io.test.hang", "1.0.0", extra=(
        "[validation]\nsteps = [\n"
        '  { name = "hangs", run = "sleep 600", timeout = 1 },\n'
        '  { name = "never runs", run = "true" },\n]\n'
    ))  # fmt: skip
    code, report = validate(pack)
    assert code == 1
    [step] = checks(report, "step")  # the second one was not run after the failure
    assert step["name"] == "hangs"
    assert step["timedOut"] is True
    assert "timed out" in step["detail"]


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP listener on the host's 127.0.0.1 recording whatever connects."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    seen: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            seen.append(b"connected")
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], seen
    stop.set()
    thread.join()
    server.close()


def connect_command(port: int) -> str:
    """A shell command connecting to the host's ``127.0.0.1:port`` (a JSON/TOML-safe string)."""
    return f"python -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 2)\""


def test_steps_cannot_reach_the_network_or_read_the_host(
    tmp_path: Path, env: dict[str, str], listener: tuple[int, list[bytes]], host_secret: Path
) -> None:
    port, seen = listener
    pack = write_gpack(tmp_path / "src", "io.test.reach", "1.0.0", extra=(
        "[validation]\nsteps = [\n"
        f'  {{ name = "network", run = {json.dumps(connect_command(port))} }},\n]\n'
    ))  # fmt: skip
    code, report = validate(pack)
    assert code == 1
    [step] = checks(report, "step")
    assert step["outcome"] == "failed"
    assert "ConnectionRefusedError" in step["outputTail"]  # no route to the host's listener
    assert seen == []  # the listener never saw a connection
    reader = write_gpack(tmp_path / "src2", "io.test.read", "1.0.0", extra=(
        f'[validation]\nsteps = [{{ name = "host file", run = "cat {host_secret}" }}]\n'
    ))  # fmt: skip
    code, report = validate(reader)
    assert code == 1
    [step] = checks(report, "step")
    assert "No such file or directory" in step["outputTail"]  # /root is hidden
    assert "host secret" not in step["outputTail"]


def test_the_policy_may_tighten_but_never_loosen(tmp_path: Path, env: dict[str, str]) -> None:
    locked = write_gpack(tmp_path / "a", "io.test.locked", "1.0.0",
                         extra='[validation]\npolicy = "locked"\n')  # fmt: skip
    code, report = validate(locked)
    assert code == 0, report
    assert report["policy"]["name"].startswith("locked")
    loose = write_gpack(tmp_path / "b", "io.test.loose", "1.0.0",
                        extra='[validation]\npolicy = "permissive"\n')  # fmt: skip
    result = ggen("market", "validate", str(loose))
    assert result.exit_code == 1
    assert "[validation] policy" in result.stderr
    assert "'strict' or 'locked'" in result.stderr


def test_validate_an_id_from_a_registry(tmp_path: Path, env: dict[str, str]) -> None:
    src = tmp_path / "reg"
    write_gpack(src, "io.test.remote", "1.0.0")
    write_gpack(src, "io.test.remote", "2.0.0")
    code, report = validate("io.test.remote@1.0.0", "--registry", str(src))
    assert code == 0, report
    assert (report["id"], report["version"]) == ("io.test.remote", "1.0.0")
    assert report["source"].startswith("io.test.remote@1.0.0 from file://")
    missing = ggen("market", "validate", "io.test.remote@3.0.0", "--registry", str(src))
    assert missing.exit_code == 1
    assert "no such version" in missing.stderr


def test_on_the_host_hooks_keep_their_own_cleanroom_whatever_a_template_sets(
    tmp_path: Path, env: dict[str, str], host_secret: Path
) -> None:
    """Outside validation nothing changes: a template naming the validation's marker in its front
    matter or variables still has its hooks run in a cleanroom of their own (the host's /root
    hidden); the hidden option itself is refused outside a cleanroom, running no hook."""
    src = tmp_path / "reg"
    front = (
        "to: a.txt\nhooks_in_validation_room: strict\nhooks_confined_by: strict\n"
        f"sh_after: {json.dumps(f'cat {host_secret}; echo ok > inside.txt')}\n"
    )
    write_gpack(src, "io.test.hosthook", "1.0.0",
                files={"templates/a.tmpl": f"---\n{front}---\nfine\n"})  # fmt: skip
    project = tmp_path / "project"
    project.mkdir()
    added = ggen("market", "add", "io.test.hosthook", "--registry", str(src),
                 "--project", str(project))  # fmt: skip
    assert added.exit_code == 0, added.output
    out = tmp_path / "out"
    args = ["template", "generate", "io.test.hosthook", "--project", str(project),
            "--out", str(out), "--var", "hooks_in_validation_room=strict"]  # fmt: skip
    done = ggen(*args, "--json")
    assert done.exit_code == 0, done.output
    [hook] = json.loads(done.stdout)["hooks"]
    assert (hook["policy"], hook["backend"]) in {("strict", "bwrap"), ("strict", "unshare")}
    assert "host secret" not in hook["stdout"] + hook["stderr"]
    assert "No such file or directory" in hook["stderr"]
    assert (out / "inside.txt").read_text() == "ok\n"
    forced = ggen(*args, "--force", "--hooks-in-validation-room", "strict")
    assert forced.exit_code == 1
    assert "this process is not in a cleanroom" in forced.stderr
    assert "host secret" not in forced.output
