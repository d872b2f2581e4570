"""A test can ask for a stricter policy than the command line's, never a weaker one."""

from __future__ import annotations

import pytest


@pytest.mark.cleanroom(timeout=0.5)
def test_a_shorter_timeout_ends_a_hung_command(cleanroom):
    result = cleanroom.run(["sleep", "30"])
    result.assert_failure().assert_limit_exceeded("timeout")
    assert result.timed_out


@pytest.mark.cleanroom(max_processes=16)
def test_a_process_limit_stops_a_fork_bomb(cleanroom):
    result = cleanroom.run(["sh", "-c", "for i in $(seq 64); do sleep 5 & done; wait"])
    result.assert_limit_exceeded("processes")  # the whole tree is killed at once


@pytest.mark.cleanroom(memory_limit=64 * 1024 * 1024)
def test_a_memory_limit_stops_a_memory_hog(cleanroom):
    result = cleanroom.run(["python3", "-c", "hog = bytearray(256 * 1024 * 1024)"])
    result.assert_limit_exceeded("memory")


@pytest.mark.cleanroom(policy="locked")
def test_the_marker_sets_the_policy_every_command_gets(cleanroom):
    assert cleanroom.policy.network == "isolated"
    result = cleanroom.run(["true"]).assert_success()
    assert result.policy_name == "locked"
    assert result.policy_digest == cleanroom.policy.digest()


@pytest.mark.cleanroom(policy="permissive")
def test_a_weaker_marker_cannot_loosen_the_command_line(cleanroom, cleanroom_settings):
    # Under --cleanroom-policy=locked this test still runs locked, and pytest shows a
    # CleanroomPolicyWarning naming the fields it refused to weaken.
    floor = cleanroom_settings.policy
    assert cleanroom.policy.is_at_least_as_strict_as(floor)
