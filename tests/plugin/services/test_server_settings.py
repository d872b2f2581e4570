"""Server settings that need a restart (ini cleanroom_postgres_settings) reach the server."""

from __future__ import annotations

import pytest

pytest_plugins = ("pytester",)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("binaries", "runtime_dir")]

INI = """
[pytest]
cleanroom_postgres_settings =
    shared_preload_libraries = pg_stat_statements
    wal_level = logical
    max_connections = 300
cleanroom_postgres_template = schema.sql
"""

TESTS = """
def test_settings(postgres):
    with postgres.connect() as conn:
        for name, value in [("wal_level", "logical"), ("max_connections", "300")]:
            assert conn.execute(f"SHOW {name}").fetchone() == (value,)
        conn.execute("SELECT 1 AS marker_for_statements")
        # The extension created in the template works in every test's copy.
        found = conn.execute(
            "SELECT count(*) FROM pg_stat_statements WHERE query LIKE '%marker_for_statements%'"
        ).fetchone()
        assert found[0] >= 1
"""


def test_settings_reach_the_server_and_template_extensions_keep_working(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.path.joinpath("schema.sql").write_text("CREATE EXTENSION pg_stat_statements;\n")
    pytester.makepyfile(test_settings=TESTS)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_malformed_setting_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncleanroom_postgres_settings =\n    wal_level logical\n")
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*ini cleanroom_postgres_settings: 'wal_level logical' is not 'name = value'*"]
    )
