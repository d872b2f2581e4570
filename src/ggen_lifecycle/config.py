"""Loading ``make.toml``: parse, validate, locate errors, and answer questions about the project.

Validation (pydantic, :mod:`.schema`) is the slow part of loading. Its result depends only on the
file's bytes and the schema, so once a project has a ``.ggen`` directory the validated data is
kept in ``.ggen/validated/<sha256 of schema.py and the file>.json`` and a file seen before is
not validated again; a changed file (or schema) gets a new key and is validated, with the same
error messages. An unreadable cached entry is ignored (validated again).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pytest_cleanroom.config_errors import positions
from pytest_cleanroom.config_errors.positions import KeyLines
from pytest_cleanroom.config_errors.pydantic_errors import format_validation_error, problems_of
from pytest_cleanroom.config_errors.suggest import closest as suggest
from pytest_cleanroom.config_errors.suggest import did_you_mean, typo_of

from .errors import ConfigError, UnknownEnvironmentError, UnknownPhaseError, UnknownWorkspaceError
from .model import (
    PACKAGE_MANAGER_DEFAULTS,
    STANDARD_PHASES,
    MakeToml,
    PhaseSpec,
    WorkspaceMakeToml,
    env_text,
)

FILE_NAME = "make.toml"
#: Keys of a phase's ``[lifecycle.P.env.ENV]`` table that are not variables.
PHASE_ENV_KEYS = ("commands", "description")
HOOK_FIXED = ("before_all", "after_all", "on_error", "on_success")
M = TypeVar("M", bound="BaseModel")
P = TypeVar("P")
VALIDATED_DIR = Path(".ggen") / "validated"

if TYPE_CHECKING:
    from pydantic import BaseModel


def unknown(
    what: str,
    name: str,
    declared: Sequence[str],
    *,
    candidates: Iterable[str] | None = None,
    fix: str = "",
) -> str:
    """``unknown workspace 'x'; did you mean 'y'?<fix> (declared: a, b)``."""
    guess = did_you_mean(name, declared if candidates is None else candidates)
    return f"unknown {what} {name!r}{guess}{fix} (declared: {', '.join(declared) or 'none'})"


def read_text(path: Path) -> str:
    """The text of a TOML file; :class:`ConfigError` if it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path.name} not found", file=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path.name}: {exc}", file=path) from None


def parse_toml(text: str, path: Path) -> dict[str, Any]:
    """The data of TOML ``text`` (read from ``path``); :class:`ConfigError` with the position."""
    from pytest_cleanroom.config_errors.errors import TomlSyntaxError
    from pytest_cleanroom.config_errors.toml import parse_toml as parse

    try:
        return parse(text, path)
    except TomlSyntaxError as exc:
        raise ConfigError(
            f"malformed TOML: {exc.reason}", file=path, line=exc.line, column=exc.column
        ) from None


def read_toml(path: Path) -> tuple[dict[str, Any], str]:
    """Parsed data and text of a TOML file; :class:`ConfigError` with the position if bad."""
    text = read_text(path)
    return parse_toml(text, path), text


def ignore_foreign_keys(
    model: type[BaseModel], data: dict[str, Any], text: str, path: Path
) -> tuple[dict[str, Any], list[str]]:
    """``data`` without the unknown keys that are not misspellings of known ones, and a warning
    (``make.toml:LINE: ...``) for each key left out."""
    import copy

    from pydantic import ValidationError

    try:
        model.model_validate(data)
        return data, []
    except ValidationError as error:
        exc = error
    kept = copy.deepcopy(data)
    warnings: list[str] = []
    for problem in problems_of(exc, model, data=data):
        where = [str(part) for part in problem.present]
        if problem.kind != "unknown" or not where or typo_of(where[-1], problem.known):
            continue
        parent: Any = kept
        for part in where[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        if isinstance(parent, dict) and parent.pop(where[-1], None) is not None:
            line = positions.locate(text, where)
            table = f"[{'.'.join(where[:-1])}]" if len(where) > 1 else "the top level"
            warnings.append(
                f"{path.name}:{line or '?'}: unknown key {where[-1]!r} in {table} ignored"
                " (not a key of this make.toml format)"
            )
    return kept, warnings


def validate_model(
    model: type[M], data: dict[str, Any], text: str, path: Path, *, what: str = FILE_NAME
) -> M:
    """``model.model_validate(data)``; errors become one :class:`ConfigError` with lines."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message, line = format_validation_error(
            exc, model, path=path, data=data, positions=KeyLines(text), what=what
        )
        raise ConfigError(message, file=path, line=line) from None


def _schema_digest() -> bytes:
    return hashlib.sha256(Path(__file__).with_name("schema.py").read_bytes()).digest()


def validated(
    build: Callable[[dict[str, Any]], P],
    model_name: str,
    text: str,
    path: Path,
    cache_root: Path,
    *,
    what: str = FILE_NAME,
    check: Callable[[dict[str, Any]], None] | None = None,
) -> P:
    """``build(TOML text parsed, checked by check(data), validated by schema.<model_name>)``,
    parsed and validated once per content.

    The validated data is cached under ``cache_root/.ggen/validated`` when ``.ggen`` exists, and
    only for files that passed: a file with errors is parsed, and reported, every time.
    """
    key = hashlib.sha256(_schema_digest() + model_name.encode() + b"\0" + text.encode())
    ggen_dir = cache_root / VALIDATED_DIR.parent
    entry = cache_root / VALIDATED_DIR / f"{key.hexdigest()}.json"
    if ggen_dir.is_dir():
        try:
            return build(json.loads(entry.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError):
            pass  # not cached yet, or unreadable: validate
    from . import schema

    data = parse_toml(text, path)
    if check is not None:
        check(data)
    model_class = getattr(schema, model_name)
    data, warnings = ignore_foreign_keys(model_class, data, text, path)
    model = validate_model(model_class, data, text, path, what=what)
    dumped = model.model_dump(mode="json")
    dumped["warnings"] = warnings
    if ggen_dir.is_dir():
        from .state import atomic_write

        with contextlib.suppress(OSError):
            atomic_write(entry, json.dumps(dumped))
    return build(dumped)


def find_make_toml(start: Path) -> Path:
    """``start`` if it is a file, else the nearest ``make.toml`` in ``start`` or its parents."""
    start = start.resolve()
    if start.is_file():
        return start
    if not start.exists():
        raise ConfigError(f"no such project directory or {FILE_NAME}: {start}")
    for directory in (start, *start.parents):
        candidate = directory / FILE_NAME
        if candidate.is_file():
            return candidate
    # No file= here: the error is that there is no file, and naming one would say otherwise.
    raise ConfigError(
        f"no {FILE_NAME} in {start} or any parent directory: run ggen lifecycle in your "
        f"project (or pass -C DIR), or create {start / FILE_NAME} with a phase, for example "
        '[lifecycle.test] command = "pytest"'
    )


@dataclass
class Project:
    """A loaded, validated project: the root ``make.toml`` and its workspaces' own files."""

    root: Path
    file: Path
    spec: MakeToml
    text: str
    workspace_files: dict[str, tuple[Path, WorkspaceMakeToml, str]] = field(default_factory=dict)

    # -- naming ---------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.project.name or self.root.name

    @property
    def workspaces(self) -> list[str]:
        return list(self.spec.workspace)

    @property
    def state_dir(self) -> Path:
        return self.root / ".ggen"

    def declared_phases(self) -> list[str]:
        """Phases declared in the root file or any workspace file, in declaration order."""
        names = list(self.spec.lifecycle)
        for _, ws_spec, _ in self.workspace_files.values():
            names.extend(n for n in ws_spec.lifecycle if n not in names)
        return names

    def phases(self) -> list[str]:
        """Declared phases, then the standard ones that are not declared."""
        declared = self.declared_phases()
        return declared + [p for p in STANDARD_PHASES if p not in declared]

    def environments(self) -> list[str]:
        """Names usable with ``--env``: ``[env.NAME]`` tables and readiness threshold sets."""
        names = [k for k, v in self.spec.env.items() if isinstance(v, dict)]
        names.extend(n for n in self.spec.readiness.thresholds if n not in names)
        names.extend(n for n in self.spec.validation if n not in names)
        return names

    def line_of(self, loc: Sequence[str]) -> int | None:
        return positions.locate(self.text, loc)

    # -- lookups that raise helpful errors -------------------------------------------------------

    @property
    def warnings(self) -> list[str]:
        """Keys ignored when the files were read (``make.toml:LINE: unknown key ...``)."""
        found = list(self.spec.warnings)
        for _, ws_spec, _ in self.workspace_files.values():
            found.extend(ws_spec.warnings)
        return found

    def require_phase(self, name: str) -> None:
        """:class:`UnknownPhaseError` unless ``name`` is declared (the error suggests a name)."""
        if name in self.declared_phases() or self._default_targets(name):
            return
        if name in STANDARD_PHASES:
            raise UnknownPhaseError(
                f"phase {name!r} is a standard phase but has no command here: declare "
                f'[lifecycle.{name}] with command = "..." in {self.file.name}',
                file=self.file,
                phase=name,
            )
        raise UnknownPhaseError(
            unknown("phase", name, self.declared_phases(), candidates=self.phases()),
            file=self.file,
            phase=name,
        )

    def require_workspace(self, name: str) -> None:
        if name in self.spec.workspace:
            return
        raise UnknownWorkspaceError(
            unknown("workspace", name, self.workspaces),
            file=self.file,
            workspace=name,
        )

    def require_environment(self, name: str) -> None:
        if name in self.environments():
            return
        fix = f": declare [env.{name}] in {self.file.name}"
        raise UnknownEnvironmentError(
            unknown("environment", name, self.environments(), fix=fix),
            file=self.file,
        )

    # -- resolution ------------------------------------------------------------------------------

    def workspace_dir(self, workspace: str | None) -> Path:
        if workspace is None:
            return self.root
        return (self.root / self.spec.workspace[workspace].path).resolve()

    def phase_spec(self, phase: str, workspace: str | None) -> tuple[PhaseSpec, Path] | None:
        """The definition of ``phase`` for ``workspace`` (its own make.toml wins) and its file."""
        if workspace is not None and workspace in self.workspace_files:
            ws_file, ws_spec, _ = self.workspace_files[workspace]
            if phase in ws_spec.lifecycle:
                return ws_spec.lifecycle[phase], ws_file
        if phase in self.spec.lifecycle:
            return self.spec.lifecycle[phase], self.file
        default = self._default_command(phase, workspace)
        if default is not None:
            manager = self.spec.workspace[workspace].package_manager if workspace else None
            return PhaseSpec(description=f"{manager} default", command=default), self.file
        return None

    def _default_command(self, phase: str, workspace: str | None) -> str | None:
        """The command ``package_manager`` gives an undeclared standard phase in ``workspace``."""
        if workspace is None or workspace not in self.spec.workspace:
            return None
        manager = self.spec.workspace[workspace].package_manager
        return PACKAGE_MANAGER_DEFAULTS.get(manager or "", {}).get(phase)

    def _default_targets(self, phase: str) -> list[str | None]:
        if phase in self.declared_phases():
            return []
        return [w for w in self.workspaces if self._default_command(phase, w) is not None]

    def targets(self, phase: str) -> list[str | None]:
        """Where ``phase`` runs: workspaces (``None`` is the project root).

        The root's ``workspaces`` list if given (``[]`` means the root only); otherwise every
        workspace, or the root when the project has none. A workspace whose own make.toml declares
        the phase is always a target.
        """
        root_spec = self.spec.lifecycle.get(phase)
        overriding = [w for w, (_, s, _) in self.workspace_files.items() if phase in s.lifecycle]
        if root_spec is None:
            return list(overriding) or self._default_targets(phase)
        if root_spec.workspaces is not None:
            chosen: list[str | None] = list(root_spec.workspaces) or [None]
        elif self.workspaces:
            chosen = list(self.workspaces)
        else:
            chosen = [None]
        chosen.extend(w for w in overriding if w not in chosen)
        order = {w: i for i, w in enumerate(self.workspaces)}
        return sorted(chosen, key=lambda w: -1 if w is None else order[w])

    def declared_env(
        self, workspace: str | None, phase: PhaseSpec | None, environment: str | None
    ) -> dict[str, str]:
        """Variables make.toml sets for a task: ``[env]``, ``[env.ENV]``, the workspace file's,
        the phase's ``env``, and ``GGEN_ENV``; later ones win."""
        out: dict[str, str] = {}
        layers = [self.spec.env]
        if workspace is not None and workspace in self.workspace_files:
            layers.append(self.workspace_files[workspace][1].env)
        for layer in layers:
            for key, value in layer.items():
                if not isinstance(value, dict):
                    out[key] = env_text(value)
            if environment is not None and isinstance(layer.get(environment), dict):
                selected = layer[environment]
                assert isinstance(selected, dict)
                out.update({k: env_text(v) for k, v in selected.items() if not isinstance(v, dict)})
        if phase is not None:
            out.update({k: env_text(v) for k, v in phase.env.items() if not isinstance(v, dict)})
            per_env = phase.env.get(environment or "")
            if isinstance(per_env, dict):
                out.update(
                    {
                        k: env_text(v)
                        for k, v in per_env.items()
                        if k not in PHASE_ENV_KEYS and not isinstance(v, list)
                    }
                )
            if phase.port:
                out["PORT"] = out["GGEN_PORT"] = str(phase.port)
        manager = self.spec.workspace[workspace].package_manager if workspace else None
        if manager:
            out["GGEN_PACKAGE_MANAGER"] = manager
        if environment is not None:
            out["GGEN_ENV"] = environment
        return out

    def phase_commands(
        self, phase: str, workspace: str | None, spec: PhaseSpec, environment: str | None
    ) -> list[str]:
        """The phase's commands; ``[env.ENV] commands.PHASE`` replaces them under ``--env ENV``."""
        layers = [self.spec.env]
        if workspace is not None and workspace in self.workspace_files:
            layers.append(self.workspace_files[workspace][1].env)
        chosen = spec.command_list()
        own = spec.env.get(environment or "")
        if isinstance(own, dict) and "commands" in own:
            given = own["commands"]
            chosen = [str(c) for c in given] if isinstance(given, list) else [str(given)]
        for layer in layers:
            table = layer.get(environment or "")
            commands = table.get("commands") if isinstance(table, dict) else None
            if isinstance(commands, dict) and phase in commands:
                override = commands[phase]
                chosen = [override] if isinstance(override, str) else list(override)
        return chosen

    def hooks(self) -> dict[str, list[str]]:
        """``[hooks]`` as lists; a phase's ``post`` entries follow its ``after_PHASE`` ones."""
        found = {k: [v] if isinstance(v, str) else list(v) for k, v in self.spec.hooks.items()}
        for name, phase in self.spec.lifecycle.items():
            if phase.post:
                found.setdefault(f"after_{name}", []).extend(phase.post)
        return found

    def hook_phase(self, entry: str) -> str | None:
        """The phase a hook entry names, or ``None`` when the entry is a command."""
        entry = entry.strip()
        return entry if entry in self.declared_phases() else None


def load_project(location: Path | str | None = None) -> Project:
    """Load and check the project whose ``make.toml`` is at or above ``location`` (default: cwd)."""
    file = find_make_toml(Path(location) if location is not None else Path.cwd())
    text = read_text(file)
    spec = validated(MakeToml.from_dict, "MakeToml", text, file, file.parent)
    project = Project(root=file.parent, file=file, spec=spec, text=text)
    _load_workspaces(project)
    _check(project)
    return project


def _load_workspaces(project: Project) -> None:
    for name, ws in project.spec.workspace.items():
        line = project.line_of(("workspace", name, "path"))
        directory = project.workspace_dir(name)
        if not directory.is_dir():
            raise ConfigError(
                f"workspace {name!r}: path {ws.path!r} does not exist "
                f"({directory} is not a directory)",
                file=project.file,
                line=line,
                workspace=name,
            )
        try:
            directory.relative_to(project.root)
        except ValueError:
            raise ConfigError(
                f"workspace {name!r}: path {ws.path!r} leaves the project root {project.root}",
                file=project.file,
                line=line,
                workspace=name,
            ) from None
        own = directory / FILE_NAME
        if own.is_file() and own != project.file:
            text = read_text(own)

            def only_workspace_tables(
                data: dict[str, Any], own: Path = own, text: str = text, name: str = name
            ) -> None:
                if "workspace" in data or "hooks" in data:
                    bad = "workspace" if "workspace" in data else "hooks"
                    raise ConfigError(
                        f"[{bad}] belongs in the root {FILE_NAME} ({project.file}), "
                        f"not in workspace {name!r}'s own file",
                        file=own,
                        line=positions.locate(text, [bad]),
                        workspace=name,
                    )

            spec = validated(
                WorkspaceMakeToml.from_dict,
                "WorkspaceMakeToml",
                text,
                own,
                project.root,
                what=f"{FILE_NAME} of {name!r}",
                check=only_workspace_tables,
            )
            project.workspace_files[name] = (own, spec, text)


class _Problems:
    """Collects a file's problems so that one error lists them all."""

    def __init__(self) -> None:
        self.found: list[ConfigError] = []

    def add(self, problem: ConfigError) -> None:
        self.found.append(problem)

    def run(self, check: Callable[..., None], *args: Any) -> None:
        try:
            check(*args)
        except ConfigError as exc:
            self.found.append(exc)

    def raise_all(self) -> None:
        if not self.found:
            return
        first = self.found[0]
        if len(self.found) == 1:
            raise first
        lines = [
            f"  {Path(p.file).name if p.file else FILE_NAME}:{p.line}: {p.message}"
            if p.line
            else f"  {p.message}"
            for p in self.found
        ]
        raise type(first)(
            f"{len(self.found)} problems:\n" + "\n".join(lines),
            file=first.file,
            line=first.line,
            phase=first.phase,
            workspace=first.workspace,
        )


def _check(project: Project) -> None:
    """Names that must exist, commands that must be there, hooks that must make sense; every
    problem of the project is reported in one error."""
    problems = _Problems()
    spec = project.spec
    for name, ws in spec.workspace.items():
        for dep in ws.depends_on:
            if dep not in spec.workspace:
                problems.add(
                    UnknownWorkspaceError(
                        f"workspace {name!r} depends on unknown workspace {dep!r}"
                        f"{did_you_mean(dep, spec.workspace)}",
                        file=project.file,
                        line=positions.locate_value(
                            project.text, ("workspace", name, "depends_on"), dep
                        ),
                        workspace=name,
                    )
                )
    declared = project.declared_phases()
    sources: list[tuple[Path, str, dict[str, PhaseSpec], str | None]] = [
        (project.file, project.text, dict(spec.lifecycle), None)
    ]
    sources.extend((f, t, dict(s.lifecycle), w) for w, (f, s, t) in project.workspace_files.items())
    for file, text, phases, ws_name in sources:
        for name, phase in phases.items():
            if not phase.command_list() and not phase.depends_on:
                problems.add(
                    ConfigError(
                        f'phase {name!r} has no command: add command = "..." or '
                        f"commands = [...] to [lifecycle.{name}] (or depends_on to make it a"
                        " group)",
                        file=file,
                        line=positions.locate(text, ("lifecycle", name)),
                        phase=name,
                        workspace=ws_name,
                    )
                )
            for dep in phase.depends_on:
                if dep not in declared:
                    problems.add(
                        UnknownPhaseError(
                            f"phase {name!r} depends on unknown phase {dep!r}"
                            f"{did_you_mean(dep, declared)}",
                            file=file,
                            line=positions.locate_value(
                                text, ("lifecycle", name, "depends_on"), dep
                            ),
                            phase=name,
                        )
                    )
            for target in phase.workspaces or []:
                if target not in spec.workspace:
                    problems.add(
                        UnknownWorkspaceError(
                            f"phase {name!r} names unknown workspace {target!r}"
                            f"{did_you_mean(target, spec.workspace)}",
                            file=file,
                            line=positions.locate_value(
                                text, ("lifecycle", name, "workspaces"), target
                            ),
                            phase=name,
                            workspace=target,
                        )
                    )
            if phase.cleanroom.enabled:
                problems.run(_check_policy, phase, name, file, text)
            if phase.cwd is not None and not _inside(phase.cwd):
                problems.add(
                    ConfigError(
                        f"phase {name!r}: cwd {phase.cwd!r} must be a relative path inside "
                        "its workspace",
                        file=file,
                        line=positions.locate(text, ("lifecycle", name, "cwd")),
                        phase=name,
                    )
                )
            problems.run(_check_globs, phase, name, file, text)
    for key, entries in project.hooks().items():
        if key not in HOOK_FIXED:
            match = re.fullmatch(r"(before|after)_(.+)", key)
            if match is None or match.group(2) not in declared:
                known = list(HOOK_FIXED) + [
                    f"{w}_{p}" for p in declared for w in ("before", "after")
                ]
                problems.add(
                    ConfigError(
                        f"unknown hook {key!r}{did_you_mean(key, known)} (hooks are before_all, "
                        "after_all, on_error, on_success, before_PHASE and after_PHASE for a"
                        " declared phase)",
                        file=project.file,
                        line=project.line_of(("hooks", key)),
                    )
                )
        for entry in entries:
            if not entry.strip():
                problems.add(
                    ConfigError(
                        f"hook {key!r} has an empty entry",
                        file=project.file,
                        line=project.line_of(("hooks", key)),
                    )
                )
            if project.hook_phase(entry) is None and re.fullmatch(r"[\w.-]+", entry.strip()):
                guess = suggest(entry.strip(), declared)
                import shutil  # here: a run whose hooks are all phases never needs it

                if guess and shutil.which(entry.strip()) is None:
                    problems.add(
                        ConfigError(
                            f"hook {key!r}: {entry!r} is neither a phase nor a command on PATH; "
                            f"did you mean phase {guess!r}?",
                            file=project.file,
                            line=positions.locate_value(project.text, ("hooks", key), entry),
                        )
                    )
    if spec.validation:
        from .production.checks import check_validation

        check_validation(project, problems.add)
    problems.raise_all()


def _inside(relative: str) -> bool:
    path = Path(relative)
    return not path.is_absolute() and ".." not in path.parts


def _check_globs(phase: PhaseSpec, name: str, file: Path, text: str) -> None:
    """Inputs and outputs are globs relative to the task's directory that cannot leave it."""
    from pytest_cleanroom.globwalk import segments

    for key in ("inputs", "outputs"):
        for pattern in getattr(phase, key):
            if segments(pattern.removeprefix("!")) is None:
                raise ConfigError(
                    f"phase {name!r}: {key} glob {pattern!r} must be relative to the task's "
                    "directory and stay inside it (no leading '/', no '..')",
                    file=file,
                    line=positions.locate_value(text, ("lifecycle", name, key), pattern),
                    phase=name,
                )


def _check_policy(phase: PhaseSpec, name: str, file: Path, text: str) -> None:
    from pytest_cleanroom.errors import PolicyError
    from pytest_cleanroom.policy import Policy

    try:
        Policy.coerce(phase.cleanroom.policy)
    except PolicyError as exc:
        raise ConfigError(
            f"phase {name!r}: invalid cleanroom policy: {exc}",
            file=file,
            line=positions.locate(text, ("lifecycle", name, "cleanroom", "policy")),
            phase=name,
        ) from None
