"""``*.scenario.toml`` (and ``.yaml``) files: parsing, validation with line numbers, ``[matrix]``.

A file describes one scenario; each row of its matrix gives one variant of it::

    [scenario]
    name = "build"
    policy = "strict"
    timeout = 60

    [matrix]
    mode = ["debug", "release"]

    [[steps]]
    name = "build"
    run = "make MODE=${matrix.mode}"
    expect_files = ["out/${matrix.mode}/app"]

    [[rollback]]
    name = "clean"
    run = "make clean"
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..config_errors.errors import TomlSyntaxError
from ..config_errors.extras import install_hint
from ..config_errors.positions import KeyLines
from ..config_errors.pydantic_errors import Problem, problems_of
from ..config_errors.toml import parse_toml
from ..errors import PolicyError
from ..policy import Policy
from .model import Scenario, ScenarioError, Step, _GroupRef

SUFFIX = ".scenario.toml"
#: YAML spellings of the same file: one model, the same checks, errors at the same lines.
YAML_SUFFIXES = (".scenario.yaml", ".scenario.yml")
SUFFIXES = (SUFFIX, *YAML_SUFFIXES)
#: The most variants a ``[matrix]`` may give, unless ``CLEANROOM_MAX_VARIANTS`` says otherwise.
MAX_VARIANTS = 1000
MAX_VARIANTS_ENV = "CLEANROOM_MAX_VARIANTS"
_MATRIX_REF = re.compile(r"\$\{matrix\.([A-Za-z0-9_-]+)\}")


class ScenarioFileError(ScenarioError):
    """A scenario file is malformed; ``str()`` is ``path:line: message``."""

    def __init__(self, path: Path, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


# -- schema ----------------------------------------------------------------------------------------


def _check_pattern(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value, re.MULTILINE)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


class _StepTable(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1)
    run: str | list[str] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    expect_exit: int | None = 0
    expect_stdout: str | None = None
    expect_stderr: str | None = None
    expect_files: list[str] = Field(default_factory=list)
    continue_on_failure: bool = False
    timeout: float | int | None = Field(None, gt=0)
    stdin: str | None = None
    group: str | None = Field(None, min_length=1)

    _patterns = field_validator("expect_stdout", "expect_stderr")(_check_pattern)


class _ScenarioTable(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(None, min_length=1)
    description: str | None = None
    policy: str | dict[str, Any] | None = None
    timeout: float | int | None = Field(None, gt=0)
    rollback_timeout: float | int | None = Field(None, gt=0)
    services: list[str] = Field(default_factory=list)
    markers: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("services")
    @classmethod
    def _known_services(cls, value: list[str]) -> list[str]:
        from ..services.kinds import check_names

        return check_names(value)  # every registered kind, third parties' included

    @field_validator("markers")
    @classmethod
    def _identifiers(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name.isidentifier():
                raise ValueError(f"marker {name!r} is not a valid Python identifier")
        return value


MatrixValue = str | int | float | bool


class _FileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    scenario: _ScenarioTable = Field(default_factory=_ScenarioTable)
    matrix: dict[str, list[MatrixValue]] | list[dict[str, MatrixValue]] | None = None
    steps: list[_StepTable] = Field(min_length=1)
    rollback: list[_StepTable] = Field(default_factory=list)


# -- loading ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioVariant:
    """One collectable scenario: a file's scenario for one matrix row (``params`` empty if none)."""

    scenario: Scenario
    params: Mapping[str, MatrixValue]
    markers: tuple[str, ...]
    description: str | None
    line: int
    markers_line: int = 1

    @property
    def id(self) -> str:
        """Readable test id: ``name`` or ``name[key=value-key=value]``."""
        if not self.params:
            return self.scenario.name
        row = "-".join(f"{k}={_fmt(v)}" for k, v in self.params.items())
        return f"{self.scenario.name}[{row}]"


def load_scenario_file(path: str | Path) -> list[ScenarioVariant]:
    """Parse and validate a scenario file; one variant per matrix row.

    Raises :class:`ScenarioFileError` naming the file and line of the first problem.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioFileError(path, None, f"cannot read the scenario file: {exc}") from None
    if path.name.endswith((".yaml", ".yml")):
        return _load_yaml(path, text)
    try:
        data = parse_toml(text, path)
    except TomlSyntaxError as exc:
        column = f" (column {exc.column})" if exc.column is not None else ""
        raise ScenarioFileError(path, exc.line, f"invalid TOML: {exc.reason}{column}") from None
    return parse_scenario_data(data, text, path)


def _load_yaml(path: Path, text: str) -> list[ScenarioVariant]:
    """A scenario file written in YAML: the same tables as keys, arrays of tables as lists."""
    try:
        from .yamlpos import YamlSyntaxError, read_yaml

        data, lines = read_yaml(text)
    except ModuleNotFoundError:
        raise ScenarioFileError(
            path, None, f"reading YAML scenario files needs PyYAML: {install_hint('yaml')}"
        ) from None
    except YamlSyntaxError as exc:
        raise ScenarioFileError(path, exc.line, f"invalid YAML: {exc.message}") from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise ScenarioFileError(
            path, 1, f"expected a mapping with 'scenario' and 'steps', got {kind}"
        )
    return parse_scenario_data(data, text, path, where=lines)


def parse_scenario_data(
    data: dict[str, Any], text: str, path: Path, *, where: KeyLines | None = None
) -> list[ScenarioVariant]:
    """Validate parsed ``data`` (``text`` is the TOML source, for line numbers; ``where`` gives
    the lines of another syntax)."""
    where = where or KeyLines(text)
    try:
        model = _FileModel.model_validate(data)
    except ValidationError as exc:
        # A misspelt key usually also leaves a required one missing: name the typo first, with
        # its suggestion, since fixing it fixes both.
        problems = problems_of(exc, _FileModel, data=data, positions=where)
        problem = min(problems, key=lambda p: p.kind != "unknown")
        raise ScenarioFileError(path, problem.line or 1, _explain(problem)) from None

    table = model.scenario
    name = table.name or next(
        (path.name.removesuffix(x) for x in SUFFIXES if path.name.endswith(x)), path.stem
    )
    try:
        policy = None if table.policy is None else Policy.coerce(table.policy)
    except PolicyError as exc:
        raise ScenarioFileError(path, where.line(("scenario", "policy")), str(exc)) from None

    rows = list(_matrix_rows(model.matrix, path, where))
    variants = []
    for params in rows:

        def sub(
            value: str, loc: tuple[Any, ...], params: Mapping[str, MatrixValue] = params
        ) -> str:
            return _substitute(value, params, path, where.line(loc))

        steps = [_build_step(s, ("steps", i), sub, path, where) for i, s in enumerate(model.steps)]
        rollback = [
            _build_step(s, ("rollback", i), sub, path, where) for i, s in enumerate(model.rollback)
        ]
        entries = _entries_with_groups(model.steps, steps, path, where)
        _check_unique([s.name for s in steps], "steps", path, where)
        _check_unique([s.name for s in rollback], "rollback", path, where)
        sc = Scenario(
            name=name,
            entries=tuple(entries),
            rollback_steps=tuple(rollback),
            scenario_timeout=None if table.timeout is None else float(table.timeout),
            rollback_timeout=None
            if table.rollback_timeout is None
            else float(table.rollback_timeout),
            policy=policy,
            services=tuple(table.services),
            env={k: sub(v, ("scenario", "env", k)) for k, v in table.env.items()},
            source=f"{path}:{where.line(('scenario',))}",
        )
        try:
            sc.plan()
        except ScenarioError as exc:
            raise ScenarioFileError(path, where.line(("steps",)), str(exc)) from None
        variants.append(
            ScenarioVariant(
                sc,
                params,
                tuple(table.markers),
                table.description,
                where.line(("scenario",)),
                where.line(("scenario", "markers")),
            )
        )
    return variants


def _build_step(
    table: _StepTable, loc: tuple[Any, ...], sub: Any, path: Path, where: KeyLines
) -> Step:
    run: str | tuple[str, ...]
    if isinstance(table.run, str):
        run = sub(table.run, (*loc, "run"))
    else:
        run = tuple(sub(a, (*loc, "run")) for a in table.run)
    try:
        return Step(
            name=sub(table.name, (*loc, "name")),
            run=run,
            env={k: sub(v, (*loc, "env", k)) for k, v in table.env.items()},
            cwd=None if table.cwd is None else sub(table.cwd, (*loc, "cwd")),
            expect_exit=table.expect_exit,
            expect_stdout=_opt(sub, table.expect_stdout, (*loc, "expect_stdout")),
            expect_stderr=_opt(sub, table.expect_stderr, (*loc, "expect_stderr")),
            expect_files=tuple(sub(f, (*loc, "expect_files")) for f in table.expect_files),
            continue_on_failure=table.continue_on_failure,
            timeout=None if table.timeout is None else float(table.timeout),
            stdin=table.stdin,
        )
    except ScenarioError as exc:
        raise ScenarioFileError(path, where.line(loc), str(exc)) from None


def _opt(sub: Any, value: str | None, loc: tuple[Any, ...]) -> str | None:
    return None if value is None else str(sub(value, loc))


def _entries_with_groups(
    tables: Sequence[_StepTable], steps: Sequence[Step], path: Path, where: KeyLines
) -> list[Step | _GroupRef]:
    """Consecutive steps sharing a ``group`` become one concurrent group."""
    entries: list[Step | _GroupRef] = []
    seen_groups: set[str] = set()
    index = 0
    while index < len(steps):
        group = tables[index].group
        if group is None:
            entries.append(steps[index])
            index += 1
            continue
        if group in seen_groups:
            raise ScenarioFileError(
                path,
                where.line(("steps", index, "group")),
                f"steps of group {group!r} must be consecutive",
            )
        seen_groups.add(group)
        end = index
        while end < len(steps) and tables[end].group == group:
            end += 1
        members = steps[index:end]
        entries.extend(members)
        if len(members) > 1:
            entries.append(_GroupRef(tuple(m.name for m in members)))
        index = end
    return entries


def _check_unique(names: list[str], array: str, path: Path, where: KeyLines) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ScenarioFileError(
                path, where.line((array, i, "name")), f"two {array} entries are named {name!r}"
            )
        seen.add(name)


def max_variants() -> int:
    """The most variants one file's ``[matrix]`` may expand to (``CLEANROOM_MAX_VARIANTS``)."""
    raw = os.environ.get(MAX_VARIANTS_ENV, "").strip()
    if raw.isdigit() and 0 < len(raw) < 10 and int(raw) > 0:
        return int(raw)
    if raw:
        raise ScenarioFileError(Path(MAX_VARIANTS_ENV), None, f"{raw!r} is not a positive integer")
    return MAX_VARIANTS


def _matrix_rows(
    matrix: dict[str, list[MatrixValue]] | list[dict[str, MatrixValue]] | None,
    path: Path,
    where: KeyLines,
) -> Iterator[dict[str, MatrixValue]]:
    """A table of lists gives their product; an array of tables gives one row per table."""
    if matrix is None:
        yield {}
        return
    if isinstance(matrix, list):
        if not matrix:
            raise ScenarioFileError(path, where.line(("matrix",)), "[[matrix]] has no rows")
        yield from (dict(row) for row in matrix)
        return
    for key, values in matrix.items():
        if not values:
            raise ScenarioFileError(
                path, where.line(("matrix", key)), f"matrix key {key!r} has no values"
            )
    keys = list(matrix)
    count = math.prod(len(matrix[k]) for k in keys)
    limit = max_variants()
    if count > limit:
        raise ScenarioFileError(
            path,
            where.line(("matrix",)),
            f"[matrix] expands to {count} variants, over the limit of {limit} "
            f"(split the file, or raise {MAX_VARIANTS_ENV})",
        )
    for combo in itertools.product(*(matrix[k] for k in keys)):
        yield dict(zip(keys, combo, strict=True))


def _substitute(value: str, params: Mapping[str, MatrixValue], path: Path, line: int) -> str:
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in params:
            known = ", ".join(params) or "no [matrix] in this file"
            raise ScenarioFileError(
                path, line, f"${{matrix.{key}}} is not a matrix key (keys: {known})"
            )
        return _fmt(params[key])

    return _MATRIX_REF.sub(replace, value)


def _fmt(value: MatrixValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- error messages --------------------------------------------------------------------------------


def _explain(problem: Problem) -> str:
    if problem.kind == "unknown":
        known = f" (known: {', '.join(problem.known)})" if problem.known else ""
        return f"unknown key {problem.dotted!r}{problem.hint() or known}"
    if problem.kind == "missing":
        return f"missing required key {problem.dotted!r}"
    return f"{problem.dotted}: {problem.message} (got {problem.value!r})"
