"""Rlimits derived from a policy and the classification of signal deaths."""

from __future__ import annotations

import signal
import subprocess

from pytest_cleanroom.backends._nsinit_native import rlimit_values
from pytest_cleanroom.backends.finish import limit_of_exit_code
from pytest_cleanroom.backends.namespace.limits import Rlimits, exit_code_of, rlimits_for
from pytest_cleanroom.policy import MiB, Policy
from tests.conftest import require_binary


def test_cgroups_take_memory_and_processes() -> None:
    policy = Policy.level("locked")
    with_cg = rlimits_for(policy, cgroups=True)
    assert with_cg.data_size is None
    assert with_cg.processes is None
    assert with_cg.file_size == 512 * MiB
    assert with_cg.cpu_seconds == 60
    without = rlimits_for(policy, cgroups=False)
    assert without.data_size == policy.memory_limit
    assert without.processes == policy.max_processes


def test_ulimit_commands_are_accepted_by_the_system_shell() -> None:
    limits = Rlimits(file_size=1000, open_files=64, cpu_seconds=2, data_size=512 * MiB)
    script = " && ".join(
        [*limits.ulimit_commands(), "ulimit -f", "ulimit -n", "ulimit -S -t", "ulimit -d"]
    )
    done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    # -f counts 512-byte blocks, rounded up so the limit is never below what was asked.
    assert done.stdout.split() == ["2", "64", "2", str(512 * 1024)]


def test_prlimit_args() -> None:
    limits = Rlimits(file_size=10, open_files=5, cpu_seconds=3, data_size=7, processes=9)
    assert limits.prlimit_args() == [
        "--fsize=10", "--nofile=5", "--cpu=3:4", "--data=7", "--nproc=9",
    ]  # fmt: skip
    assert Rlimits().empty
    assert not limits.empty


def test_settings_are_the_one_table_every_launcher_renders() -> None:
    limits = Rlimits(file_size=10, open_files=5, cpu_seconds=3, data_size=7, processes=9)
    assert limits.settings() == [
        ("fsize", 10, 10), ("nofile", 5, 5), ("cpu", 3, 4), ("data", 7, 7), ("nproc", 9, 9),
    ]  # fmt: skip
    assert rlimit_values(limits) == {"fsize": 10, "nofile": 5, "cpu": [3, 4], "data": 7, "nproc": 9}
    assert Rlimits(open_files=3).settings() == [("nofile", 3, 3)]


def test_ulimit_and_prlimit_set_the_same_limits() -> None:
    prlimit = require_binary("prlimit", "apt-get install util-linux")
    limits = Rlimits(file_size=4 * MiB, open_files=77, cpu_seconds=5, data_size=256 * MiB)
    show = "cat /proc/self/limits"
    by_shell = " && ".join([*limits.ulimit_commands(), show])
    shell = subprocess.run(["/bin/sh", "-c", by_shell], capture_output=True, text=True, check=True)
    argv = [prlimit, *limits.prlimit_args(), "--", "/bin/sh", "-c", show]
    by_prlimit = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert shell.stdout == by_prlimit.stdout
    assert "Max open files            77" in shell.stdout


def test_exit_codes_follow_the_shell_convention() -> None:
    assert exit_code_of(-9) == 137
    assert exit_code_of(3) == 3


def test_signal_deaths_name_their_limit() -> None:
    locked = Policy.level("locked")
    assert limit_of_exit_code(128 + signal.SIGXFSZ, locked) == "file_size"
    assert limit_of_exit_code(128 + signal.SIGXCPU, locked) == "cpu_time"
    assert limit_of_exit_code(1, locked) is None
    unlimited = locked.replace(max_file_size=None, cpu_time_limit=None)
    assert limit_of_exit_code(128 + signal.SIGXFSZ, unlimited) is None
