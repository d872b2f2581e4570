"""Several PostgreSQL major versions side by side: Debian's 15 and the pgserver wheel's 16 (what
scripts/setup.sh installs), chosen by ini key or fixture factory, each its own server."""

from __future__ import annotations

from pathlib import Path

import docker  # noqa: F401  (loaded before pytester snapshots sys.modules)
import pytest

from pytest_cleanroom.services import factories
from pytest_cleanroom.services.binaries import find_postgres
from pytest_cleanroom.services.engines import ContainerEngine
from pytest_cleanroom.services.errors import ServiceConfigError
from pytest_cleanroom.services.settings import ServiceSettings
from tests.conftest import require

pytest_plugins = ("pytester",)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("runtime_dir")]


@pytest.fixture
def two_majors() -> tuple[int, int]:
    first = find_postgres()
    require(first is not None, "PostgreSQL server binaries (apt-get install postgresql)")
    assert first is not None
    other = 16 if first.major != 16 else 15
    require(
        find_postgres(None, other) is not None,
        f"PostgreSQL {other} beside {first.major} (scripts/setup.sh installs the pgserver wheel)",
    )
    return first.major, other


CONFTEST = """
from pytest_cleanroom.services import factories

postgres_other = factories.postgres(version={other})
postgres_other_by_dir = factories.postgres(bin_dir={bin_dir!r})
"""

TESTS = """
import os

import pytest


def major(db):
    with db.connect() as conn:
        return int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000


@pytest.mark.parametrize("n", range(4))
def test_side_by_side(postgres, postgres_other, postgres_other_by_dir, n):
    seen = os.path.join(os.environ["SEEN"], os.environ.get("PYTEST_XDIST_WORKER", "m"))
    with open(seen, "a") as f:
        for db in (postgres, postgres_other, postgres_other_by_dir):
            f.write(f"{major(db)} {db.port}\\n")
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_two_majors_run_side_by_side_in_one_run(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    two_majors: tuple[int, int],
    workers: str,
) -> None:
    default, other = two_majors
    other_dir = find_postgres(None, other)
    assert other_dir is not None
    seen = pytester.mkdir("seen")
    monkeypatch.setenv("SEEN", str(seen))
    pytester.makeconftest(CONFTEST.format(other=other, bin_dir=str(other_dir.bin_dir)))
    pytester.makepyfile(test_versions=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", workers)
    result.assert_outcomes(passed=4)
    pairs = {tuple(line.split()) for f in seen.iterdir() for line in f.read_text().splitlines()}
    # One server per fixture for the whole run (every worker): a server is identified by what
    # its fixture asks for (a major, a directory), so the two of the other major are two.
    assert sorted(major for major, _ in pairs) == sorted([str(default), str(other), str(other)])


def test_the_ini_key_chooses_the_plain_fixtures_major(
    pytester: pytest.Pytester, two_majors: tuple[int, int]
) -> None:
    _, other = two_majors
    pytester.makeini(f"[pytest]\ncleanroom_postgres_version = {other}\n")
    pytester.makepyfile(
        test_one=f"""
def test_one(postgres, postgres_server):
    assert postgres_server.version_num // 10000 == {other}
    with postgres.connect() as conn:
        conn.execute("CREATE TABLE t (x int)")
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"cleanroom services: postgres=process (auto: postgres {other}.*"])


def test_a_major_the_machine_lacks_is_one_error_naming_what_it_has(
    pytester: pytest.Pytester, two_majors: tuple[int, int]
) -> None:
    default, other = two_majors
    pytester.makeini("[pytest]\ncleanroom_postgres_version = 42\n")
    pytester.makepyfile(test_one="def test_one(postgres):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--cleanroom-services=process")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [f"*PostgreSQL 42 (ini cleanroom_postgres_version) not found*found: {default}.*{other}.*"]
    )


def test_the_container_provider_refuses_an_image_of_another_major_before_starting_it(
    pytester: pytest.Pytester, engine: ContainerEngine
) -> None:
    pytester.makeini("[pytest]\ncleanroom_postgres_version = 42\n")
    pytester.makepyfile(test_one="def test_one(postgres):\n    pass\n")
    services = f"--cleanroom-services={engine.name}"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", services)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*PostgreSQL 42 but image cleanroom/postgres:15 runs 15*cleanroom_postgres_image*"]
    )


def test_bad_versions_are_refused_where_they_are_written(tmp_path: Path) -> None:
    with pytest.raises(ServiceConfigError, match="ini cleanroom_postgres_version='sixteen'"):
        ServiceSettings.resolve(
            option=lambda name: None,
            ini=lambda key: "sixteen" if key == "cleanroom_postgres_version" else None,
            env={},
            base_dir=tmp_path,
        )
    with pytest.raises(ServiceConfigError, match=r"factories\.postgres\(version=\.\.\.\)"):
        factories.postgres(version=3)


def test_the_major_and_directory_are_part_of_the_servers_identity() -> None:
    plain = ServiceSettings()
    assert plain.postgres_identity == ()
    sixteen = plain.with_changes(postgres_version=16)
    assert sixteen.postgres_identity != plain.postgres_identity
    assert sixteen.with_changes(postgres_bin_dir=Path("/x")).postgres_identity not in (
        sixteen.postgres_identity,
        plain.postgres_identity,
    )
