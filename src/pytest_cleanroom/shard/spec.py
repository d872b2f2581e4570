"""Which shard this process runs: ``K/N`` from the command line, or from the engine's variables.

``auto`` reads, in this order: a Kubernetes Indexed Job's ``JOB_COMPLETION_INDEX`` (0-based) with
the completions count passed in as ``CLEANROOM_SHARD_COUNT``; GitLab's ``CI_NODE_INDEX`` (1-based)
and ``CI_NODE_TOTAL``. A GitHub Actions matrix passes its values on the command line
(``--cleanroom-shard=${{ matrix.shard }}/3``). The run all shards belong to is named by
``--cleanroom-shard-run``, else ``CLEANROOM_SHARD_RUN``, else the CI's run (GitHub's run id and
attempt, GitLab's pipeline id).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_FORM = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class ShardSpecError(ValueError):
    """A shard that cannot be: the message says what to give instead."""


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` (1-based) of ``total``, where that came from, and the run's id."""

    index: int
    total: int
    source: str
    run: str | None

    @property
    def label(self) -> str:
        return f"{self.index}/{self.total}"


def _checked(index: int, total: int, where: str) -> tuple[int, int]:
    if total < 1:
        raise ShardSpecError(f"{where}: the number of shards must be at least 1 (got {total})")
    if not 1 <= index <= total:
        raise ShardSpecError(f"{where}: shard {index} is not between 1 and {total}")
    return index, total


def parse(text: str) -> tuple[int, int]:
    """``"K/N"`` as (K, N); :class:`ShardSpecError` naming the expected form otherwise."""
    match = _FORM.match(text)
    if match is None:
        raise ShardSpecError(f"{text!r} is not K/N (for example 2/4) or auto")
    return _checked(int(match.group(1)), int(match.group(2)), repr(text))


def _integer(env: Mapping[str, str], name: str) -> int:
    value = env.get(name, "").strip()
    if not value.isdigit():
        raise ShardSpecError(f"{name}={env.get(name)!r} is not a whole number")
    return int(value)


def from_environment(env: Mapping[str, str]) -> tuple[int, int, str]:
    """(K, N, source) from the variables a shard engine sets."""
    if "JOB_COMPLETION_INDEX" in env:
        if "CLEANROOM_SHARD_COUNT" not in env:
            raise ShardSpecError(
                "JOB_COMPLETION_INDEX is set but CLEANROOM_SHARD_COUNT is not: pass the Job's"
                " completions count to the pod as CLEANROOM_SHARD_COUNT"
            )
        index = _integer(env, "JOB_COMPLETION_INDEX") + 1
        total = _integer(env, "CLEANROOM_SHARD_COUNT")
        return (*_checked(index, total, "JOB_COMPLETION_INDEX"), "JOB_COMPLETION_INDEX")
    if "CI_NODE_INDEX" in env and "CI_NODE_TOTAL" in env:
        index, total = _integer(env, "CI_NODE_INDEX"), _integer(env, "CI_NODE_TOTAL")
        return (*_checked(index, total, "CI_NODE_INDEX"), "CI_NODE_INDEX")
    raise ShardSpecError(
        "auto found no shard variables: set JOB_COMPLETION_INDEX and CLEANROOM_SHARD_COUNT"
        " (Kubernetes Indexed Job), CI_NODE_INDEX and CI_NODE_TOTAL (GitLab), or give K/N"
    )


def run_from_environment(env: Mapping[str, str]) -> str | None:
    """The id of the run the shards belong to, when the environment names one."""
    if env.get("CLEANROOM_SHARD_RUN"):
        return env["CLEANROOM_SHARD_RUN"]
    if env.get("GITHUB_RUN_ID"):
        return f"github:{env['GITHUB_RUN_ID']}-{env.get('GITHUB_RUN_ATTEMPT', '1')}"
    if env.get("CI_PIPELINE_ID"):
        return f"gitlab:{env['CI_PIPELINE_ID']}"
    return None


def resolve(option: str, run: str | None, env: Mapping[str, str]) -> ShardSpec:
    """The shard for ``--cleanroom-shard=option`` (``K/N`` or ``auto``)."""
    if option.strip() == "auto":
        index, total, source = from_environment(env)
    else:
        (index, total), source = parse(option), "option"
    return ShardSpec(index, total, source, run or run_from_environment(env))
