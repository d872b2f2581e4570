"""Every command starts from the same environment: UTC, no locale, a fixed PATH and HOME, and the
run's seed (shown in the report header: replay a failure with ``--cleanroom-seed=N``)."""

from __future__ import annotations

import sys
from pathlib import Path

FIXED_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def test_the_environment_is_fixed_and_scrubbed(cleanroom, monkeypatch):
    monkeypatch.setenv("MY_SECRET_TOKEN", "do-not-leak")  # on the host, for this test only
    output = cleanroom.run(["env", "-0"]).assert_success().stdout
    env = dict(item.split("=", 1) for item in output.split("\0") if item)
    assert env["TZ"] == "UTC"
    assert env["HOME"].startswith("/workspace")
    # The fixed PATH, after the bin of the venv running pytest (its console scripts by name).
    assert env["PATH"] in (FIXED_PATH, f"{Path(sys.prefix, 'bin')}:{FIXED_PATH}")
    assert "SOURCE_DATE_EPOCH" in env
    assert "MY_SECRET_TOKEN" not in env
    assert not [name for name in env if name == "LANG" or name.startswith("LC_")]


def test_time_is_utc(cleanroom):
    result = cleanroom.run(["date", "+%Z %z", "-d", "@0"]).assert_success()
    assert result.stdout == "UTC +0000\n"


def test_the_seed_is_the_runs_and_makes_randomness_repeatable(cleanroom, cleanroom_settings):
    script = (
        "import os, random\n"
        "random.seed(int(os.environ['CLEANROOM_SEED']))\n"
        "print(random.random(), hash('cleanroom'))\n"
    )
    first = cleanroom.run(["python3", "-c", script]).assert_success()
    second = cleanroom.run(["python3", "-c", script]).assert_success()
    assert first.stdout == second.stdout  # same seed, same PYTHONHASHSEED: same output
    assert first.seed == cleanroom.seed == cleanroom_settings.seed
    assert first.environment["CLEANROOM_SEED"] == str(cleanroom.seed)
