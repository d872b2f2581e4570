"""Scenarios: named steps run one after another in one workspace, with concurrent groups and
rollback steps. Importable without pytest.

A :class:`Scenario` is immutable: every builder method returns a new scenario, so a common base can
be extended in several directions::

    sc = (
        scenario("release")
        .step("init", ["git", "init", "-q"])
        .step("build", "make build", expect_stdout=r"built \\d+ files")
        .concurrent(step("lint", "make lint"), step("typecheck", "make typecheck"))
        .with_rollback("clean", ["make", "clean"])
        .timeout(60)
    )
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import CleanroomError
from ..policy import Policy

Command = str | Sequence[str]
Stage = tuple["Step", ...]


class ScenarioError(CleanroomError, ValueError):
    """A scenario is ill-formed: a duplicate or unknown step name, a bad pattern or timeout."""


@dataclass(frozen=True)
class Step:
    """One command of a scenario and what it is expected to do.

    ``run`` is an argument list, or a string run with ``sh -c``. ``expect_exit=None`` accepts any
    exit code; ``expect_stdout``/``expect_stderr`` are regular expressions searched (multiline) in
    the decoded stream; ``expect_files`` are workspace-relative paths that must exist afterwards.
    A failing step with ``continue_on_failure`` is reported but does not stop the scenario.
    """

    name: str
    run: str | tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    expect_exit: int | None = 0
    expect_stdout: str | None = None
    expect_stderr: str | None = None
    expect_files: tuple[str, ...] = ()
    continue_on_failure: bool = False
    timeout: float | None = None
    stdin: str | bytes | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ScenarioError(f"a step needs a non-empty name, got {self.name!r}")
        if isinstance(self.run, str):
            if not self.run.strip():
                raise ScenarioError(f"step {self.name!r}: 'run' is an empty command")
        else:
            argv = tuple(self.run)
            if not argv or not all(isinstance(a, str) for a in argv):
                raise ScenarioError(
                    f"step {self.name!r}: 'run' must be a string or a non-empty list of strings"
                )
            object.__setattr__(self, "run", argv)
        for label in ("expect_stdout", "expect_stderr"):
            pattern = getattr(self, label)
            if pattern is not None:
                try:
                    re.compile(pattern, re.MULTILINE)
                except re.error as exc:
                    raise ScenarioError(
                        f"step {self.name!r}: {label} is not a valid regular expression: {exc}"
                    ) from None
        if self.timeout is not None and self.timeout <= 0:
            raise ScenarioError(f"step {self.name!r}: timeout must be positive")
        if isinstance(self.expect_files, str):
            object.__setattr__(self, "expect_files", (self.expect_files,))
        else:
            object.__setattr__(self, "expect_files", tuple(self.expect_files))
        object.__setattr__(self, "env", dict(self.env))

    @property
    def command_line(self) -> str:
        """The command as one line (argument lists are shell-quoted)."""
        if isinstance(self.run, str):
            return self.run
        import shlex

        return shlex.join(self.run)


def step(name: str, run: Command, **options: Any) -> Step:
    """A :class:`Step`; handy for :meth:`Scenario.concurrent` groups of new steps."""
    return Step(name, run if isinstance(run, str) else tuple(run), **options)


@dataclass(frozen=True)
class _GroupRef:
    """Placeholder in the step sequence: a concurrent group, resolved by :meth:`Scenario.plan`."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class Scenario:
    """An immutable multi-step workflow. Build it with :func:`scenario`."""

    name: str
    entries: tuple[Step | _GroupRef, ...] = ()
    rollback_steps: tuple[Step, ...] = ()
    scenario_timeout: float | None = None
    rollback_timeout: float | None = None
    policy: Policy | str | None = None
    services: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    source: str | None = None  # "file:line" when loaded from a scenario file

    def __repr__(self) -> str:
        steps = sum(isinstance(e, Step) for e in self.entries)
        parts = [f"{steps} step{'s' if steps != 1 else ''}"]
        if self.rollback_steps:
            parts.append(f"{len(self.rollback_steps)} rollback")
        if self.scenario_timeout is not None:
            parts.append(f"timeout {self.scenario_timeout:g}s")
        if self.services:
            parts.append("services " + ",".join(self.services))
        return f"<Scenario {self.name!r}: {', '.join(parts)}>"

    # -- builder ---------------------------------------------------------------------------------

    def step(self, name: str | Step, run: Command | None = None, **options: Any) -> Scenario:
        """Append a step: ``step("build", "make build", expect_exit=0)`` or a :class:`Step`."""
        new = _as_step(name, run, options)
        self._check_new_name(new.name)
        return replace(self, entries=(*self.entries, new))

    def concurrent(self, *members: str | Step) -> Scenario:
        """Run ``members`` at the same time, at this point of the sequence.

        A member is a new :class:`Step` (``step("lint", "ruff check .")``) or the name of a step
        declared with :meth:`step` (before or after this call): that step then runs here, in the
        group, instead of in its own place. The group finishes when all its members have.
        """
        if len(members) < 2:
            raise ScenarioError(
                f"scenario {self.name!r}: concurrent() needs at least two steps, got {len(members)}"
            )
        entries = list(self.entries)
        names: list[str] = []
        for member in members:
            if isinstance(member, Step):
                self._check_new_name(member.name, pending=entries)
                entries.append(member)
                names.append(member.name)
            elif isinstance(member, str):
                names.append(member)
            else:
                raise ScenarioError(
                    f"scenario {self.name!r}: concurrent() takes step names or step(...) objects, "
                    f"got {member!r}"
                )
        if len(set(names)) != len(names):
            raise ScenarioError(f"scenario {self.name!r}: concurrent() names a step twice: {names}")
        entries.append(_GroupRef(tuple(names)))
        return replace(self, entries=tuple(entries))

    def with_rollback(
        self, name: str | Step, run: Command | None = None, **options: Any
    ) -> Scenario:
        """Add a rollback step: rollback steps run, all of them, after a failure or a timeout."""
        new = _as_step(name, run, options)
        if any(s.name == new.name for s in self.rollback_steps):
            raise ScenarioError(
                f"scenario {self.name!r}: two rollback steps are named {new.name!r}"
            )
        return replace(self, rollback_steps=(*self.rollback_steps, new))

    def timeout(self, seconds: float, *, rollback: float | None = None) -> Scenario:
        """Wall-clock budget of the whole scenario; a step still running at the end is killed.

        Rollback steps get a budget of their own, ``rollback`` seconds (default: ``seconds``).
        """
        for label, value in (("timeout", seconds), ("rollback timeout", rollback)):
            if value is not None and not value > 0:
                raise ScenarioError(f"scenario {self.name!r}: {label} must be positive")
        return replace(self, scenario_timeout=float(seconds), rollback_timeout=rollback)

    def with_policy(self, policy: Policy | str) -> Scenario:
        """Run every step under ``policy`` (never weaker than the run's policy)."""
        return replace(self, policy=policy)

    def with_services(self, *names: str) -> Scenario:
        """Services (``postgres``, ``redis``) to start for the scenario when run under pytest."""
        return replace(self, services=tuple(dict.fromkeys((*self.services, *names))))

    def with_env(self, **env: str) -> Scenario:
        """Environment variables given to every step (a step's own ``env`` wins)."""
        return replace(self, env={**self.env, **env})

    # -- reading ---------------------------------------------------------------------------------

    def plan(self) -> tuple[Stage, ...]:
        """The stages in order: one step, or several that run concurrently.

        Raises :class:`ScenarioError` when a group names an unknown step or a step twice.
        """
        declared = {e.name: e for e in self.entries if isinstance(e, Step)}
        grouped: dict[str, int] = {}
        for index, entry in enumerate(self.entries):
            if isinstance(entry, _GroupRef):
                for name in entry.names:
                    if name not in declared:
                        known = ", ".join(declared) or "none"
                        raise ScenarioError(
                            f"scenario {self.name!r}: concurrent() names unknown step {name!r} "
                            f"(steps: {known})"
                        )
                    if name in grouped:
                        raise ScenarioError(
                            f"scenario {self.name!r}: step {name!r} is in two concurrent groups"
                        )
                    grouped[name] = index
        stages: list[Stage] = []
        for entry in self.entries:
            if isinstance(entry, _GroupRef):
                stages.append(tuple(declared[n] for n in entry.names))
            elif entry.name not in grouped:
                stages.append((entry,))
        return tuple(stages)

    @property
    def steps(self) -> tuple[Step, ...]:
        """Every main step in the order the stages run (rollback steps excluded)."""
        return tuple(s for stage in self.plan() for s in stage)

    def _check_new_name(self, name: str, pending: Iterable[Step | _GroupRef] = ()) -> None:
        for entry in (*self.entries, *pending):
            if isinstance(entry, Step) and entry.name == name:
                raise ScenarioError(f"scenario {self.name!r}: two steps are named {name!r}")


def scenario(name: str) -> Scenario:
    """Start building a scenario called ``name``."""
    if not isinstance(name, str) or not name.strip():
        raise ScenarioError(f"a scenario needs a non-empty name, got {name!r}")
    return Scenario(name=name)


def _as_step(name: str | Step, run: Command | None, options: dict[str, Any]) -> Step:
    if isinstance(name, Step):
        if run is not None or options:
            raise ScenarioError(f"step {name.name!r}: pass either a Step or a name and a command")
        return name
    if run is None:
        raise ScenarioError(f"step {name!r} needs a command to run")
    try:
        return step(name, run, **options)
    except TypeError as exc:
        raise ScenarioError(f"step {name!r}: {exc}") from None
