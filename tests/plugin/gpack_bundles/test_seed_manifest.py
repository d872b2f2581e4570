"""The seed's test-pack manifest form: ``security_level``, isolation switches, ``max_memory_mb``,
``max_cpu_percent`` and a named YAML scenario file, installed and run through pytest."""

from __future__ import annotations

import socket
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.engine.conftest import require_backend

pytestmark = pytest.mark.integration

SEED_CLEANROOM = """\
[cleanroom]
security_level = "Medium"
enable_network_isolation = true
enable_filesystem_isolation = true
max_memory_mb = 1024
{cpu}
[scenarios]
integration = "scenarios/integration_tests.yaml"
"""

INTEGRATION = """\
scenario:
  name: integration
steps:
  - name: runs in the workspace
    run: ["sh", "-c", "echo ok > done.txt && cat done.txt"]
    expect_stdout: "^ok$"
  - name: the host's listener is out of reach
    run: ["python3", "-c", "import socket; socket.create_connection(('127.0.0.1', PORT), 2)"]
    expect_exit: 1
    expect_stderr: "ConnectionRefusedError"
"""


def seed_pack(root: Path, pack_id: str, cpu: str, port: int = 9) -> Path:
    path = root / pack_id
    (path / "scenarios").mkdir(parents=True)
    (path / "gpack.toml").write_text(
        f'[gpack]\nid = "{pack_id}"\nname = "seed"\nversion = "1.0.0"\n\n'
        + SEED_CLEANROOM.format(cpu=cpu)
    )
    (path / "scenarios" / "integration_tests.yaml").write_text(
        textwrap.dedent(INTEGRATION).replace("PORT", str(port))
    )
    return path


def test_the_seed_manifest_form_installs_and_its_yaml_scenario_runs_isolated(
    pytester: pytest.Pytester, install_packs: Callable[..., None], tmp_path: Path
) -> None:
    with socket.socket() as listener:  # on the host: the isolated scenario must not reach it
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        install_packs(pytester.path, seed_pack(tmp_path, "io.test.seed", cpu="", port=port))
        result = pytester.runpytest("-v", "-p", "no:cacheprovider")
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*integration_tests.yaml::integration PASSED*"])


def test_max_cpu_percent_becomes_an_enforced_cpu_quota(
    pytester: pytest.Pytester, install_packs: Callable[..., None], tmp_path: Path
) -> None:
    require_backend("bwrap")
    install_packs(pytester.path, seed_pack(tmp_path, "io.test.cpu", cpu="max_cpu_percent = 80.0"))
    result = pytester.runpytest(
        "-v", "-p", "no:cacheprovider", "--cleanroom-backend=bwrap", "--junitxml=junit.xml"
    )
    result.assert_outcomes(passed=1)
    junit = (pytester.path / "junit.xml").read_text()
    assert "cpu_quota" in junit  # the recorded policy is the one with the quota
