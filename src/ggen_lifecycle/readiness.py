"""Production readiness: requirements, their status, a score out of 100, and placeholders.

Requirements live in ``.ggen/production.toml`` as ``[[requirement]]`` tables; a built-in starter
set (below) is included unless the file says ``starter = false``. An entry whose ``id`` is a
starter requirement overrides it (usually just its ``status`` and ``notes``).

Score: each requirement weighs by category (critical 5, important 3, nice-to-have 1) and earns a
share of its weight by status (complete 100 %, needs-review 50 %, placeholder 25 %, missing 0 %).
The score is 100 x earned / total weight, rounded to one decimal. A critical requirement that is
not complete blocks production.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from pytest_cleanroom.config_errors import positions
from pytest_cleanroom.config_errors.suggest import did_you_mean
from pytest_cleanroom.deadline import DeadlineExceededError, time_limit

from .config import parse_toml, read_text, read_toml, validate_model
from .errors import LifecycleError, ReadinessError, StorageError
from .model import Thresholds
from .schema import Strict
from .state import atomic_write

Category = Literal["critical", "important", "nice-to-have"]
Status = Literal["missing", "placeholder", "needs-review", "complete"]

CATEGORY_WEIGHTS: dict[str, float] = {"critical": 5.0, "important": 3.0, "nice-to-have": 1.0}
STATUS_CREDIT: dict[str, float] = {
    "missing": 0.0,
    "placeholder": 0.25,
    "needs-review": 0.5,
    "complete": 1.0,
}
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "missing": ("placeholder", "needs-review"),
    "placeholder": ("needs-review", "missing"),
    "needs-review": ("complete", "placeholder", "missing"),
    "complete": ("needs-review",),
}
FILE = Path(".ggen") / "production.toml"
SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".ggen",
        ".hg",
        ".svn",
        "node_modules",
        ".venv",
        "venv",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".tox",
        "target",
        "dist",
        "build",
    }
)
MAX_SCAN_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Requirement:
    id: str
    name: str
    category: str
    status: str = "missing"
    notes: str = ""
    builtin: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "category": self.category,
            "status": self.status,
            "notes": self.notes,
            "builtin": self.builtin,
            "weight": CATEGORY_WEIGHTS[self.category],
            "credit": STATUS_CREDIT[self.status],
        }


STARTER: tuple[Requirement, ...] = tuple(
    Requirement(id=i, name=n, category=c, builtin=True)
    for i, n, c in (
        ("tests", "Automated tests cover the main paths and pass in CI", "critical"),
        ("error-handling", "Errors are handled, reported and never swallowed", "critical"),
        ("security-review", "Security review done; dependencies audited", "critical"),
        ("secrets", "No secrets in the code; configuration comes from the environment", "critical"),
        ("no-placeholders", "No placeholder code (TODO, FIXME, unimplemented) left", "critical"),
        ("logging", "Structured logging of what operators need", "important"),
        ("monitoring", "Health checks, metrics and alerts", "important"),
        ("docs", "User and operator documentation", "important"),
        ("ci", "Continuous integration builds, tests and lints every change", "important"),
        ("backups", "Backups and a tested restore procedure", "important"),
        ("performance", "Performance measured against a target", "important"),
        ("changelog", "A changelog for releases", "nice-to-have"),
        ("examples", "Runnable examples", "nice-to-have"),
    )
)


class RequirementEntry(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    name: str | None = None
    category: Category | None = None
    status: Status | None = None
    notes: str | None = None


class ProductionToml(Strict):
    starter: bool = True
    requirement: list[RequirementEntry] = Field(default_factory=list)


def production_file(root: Path) -> Path:
    return root / FILE


def load_requirements(root: Path) -> list[Requirement]:
    """The starter set merged with ``.ggen/production.toml`` (if present), in a stable order."""
    path = production_file(root)
    spec = ProductionToml()
    if path.exists():
        data, text = read_toml(path)
        spec = validate_model(ProductionToml, data, text, path, what="production.toml")
    merged: dict[str, Requirement] = {}
    if spec.starter:
        merged = {r.id: r for r in STARTER}
    seen: set[str] = set()
    for index, entry in enumerate(spec.requirement):
        if entry.id in seen:
            raise ReadinessError(
                f"requirement {entry.id!r} is listed twice",
                file=path,
                line=positions.locate_in_file(path, ("requirement", str(index))),
            )
        seen.add(entry.id)
        base = merged.get(entry.id)
        if base is None and (entry.name is None or entry.category is None):
            raise ReadinessError(
                f"requirement {entry.id!r} is not a starter requirement, so it needs both "
                f"'name' and 'category'{did_you_mean(entry.id, [r.id for r in STARTER])}",
                file=path,
                line=positions.locate_in_file(path, ("requirement", str(index))),
            )
        merged[entry.id] = Requirement(
            id=entry.id,
            name=entry.name or (base.name if base else ""),
            category=entry.category or (base.category if base else "important"),
            status=entry.status or (base.status if base else "missing"),
            notes=entry.notes if entry.notes is not None else (base.notes if base else ""),
            builtin=base is not None and base.builtin,
        )
    return list(merged.values())


@dataclass(frozen=True)
class Score:
    score: float
    requirements: list[Requirement]

    @property
    def blockers(self) -> list[Requirement]:
        """Critical requirements that are not complete."""
        return [r for r in self.requirements if r.category == "critical" and r.status != "complete"]

    def by_category(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for category in CATEGORY_WEIGHTS:
            members = [r for r in self.requirements if r.category == category]
            out[category] = {s: sum(1 for r in members if r.status == s) for s in STATUS_CREDIT}
        return out

    def to_dict(self, detailed: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "score": self.score,
            "ready": not self.blockers,
            "blockers": [r.to_dict() for r in self.blockers],
            "categories": self.by_category(),
            "weights": CATEGORY_WEIGHTS,
            "credits": STATUS_CREDIT,
        }
        if detailed:
            data["requirements"] = [r.to_dict() for r in self.requirements]
        return data


def score(requirements: Sequence[Requirement]) -> Score:
    """The weighted score of ``requirements`` (100 when there are none)."""
    total = sum(CATEGORY_WEIGHTS[r.category] for r in requirements)
    earned = sum(CATEGORY_WEIGHTS[r.category] * STATUS_CREDIT[r.status] for r in requirements)
    value = round(100.0 * earned / total, 1) if total else 100.0
    return Score(score=value, requirements=list(requirements))


def update_status(root: Path, requirement_id: str, status: str, notes: str | None = None) -> str:
    """Change one requirement's status through an allowed transition; returns the old status.

    The file is edited in place (comments and order kept) and written atomically.
    """
    if status not in STATUS_CREDIT:
        raise ReadinessError(
            f"unknown status {status!r}{did_you_mean(status, STATUS_CREDIT)} "
            f"(one of: {', '.join(STATUS_CREDIT)})"
        )
    requirements = {r.id: r for r in load_requirements(root)}
    path = production_file(root)
    if notes is not None:
        try:
            notes.encode("utf-8")
        except UnicodeEncodeError:
            raise ReadinessError("the notes are not valid UTF-8 text", file=path) from None
    current = requirements.get(requirement_id)
    if current is None:
        raise ReadinessError(
            f"unknown requirement {requirement_id!r}{did_you_mean(requirement_id, requirements)}",
            file=path,
        )
    if current.status != status and status not in TRANSITIONS[current.status]:
        allowed = ", ".join(TRANSITIONS[current.status])
        raise ReadinessError(
            f"{requirement_id}: cannot go from {current.status!r} to {status!r} "
            f"(from {current.status!r} it may go to: {allowed})",
            file=path,
        )
    text = read_text(path) if path.exists() else _HEADER
    edited = _set_field(text, requirement_id, "status", status)
    if notes is not None:
        edited = _set_field(edited, requirement_id, "notes", notes)
    _check_edit(path, text, edited, requirement_id, status, notes)
    try:
        atomic_write(path, edited, durable=True)
    except OSError as exc:
        raise StorageError.from_os_error(exc, file=path) from None
    return current.status


def _check_edit(
    path: Path, before: str, after: str, requirement_id: str, status: str, notes: str | None
) -> None:
    """Parse the edited text and prove it changes exactly what was asked, before it replaces the
    file: a layout the line editor misreads (an ``id = ...`` line inside multi-line notes, say)
    is refused rather than written."""
    old = _entries(path, before)
    try:
        new = _entries(path, after)
    except LifecycleError:
        new = None
    wanted = [dict(e) for e in old]
    changed = next((e for e in wanted if e["id"] == requirement_id), None)
    if changed is None:
        changed = {"id": requirement_id}
        wanted.append(changed)
    changed["status"] = status
    if notes is not None:
        changed["notes"] = notes
    if new != wanted:
        raise ReadinessError(
            f"cannot edit {path.name} safely (its layout confuses the line editor): set "
            f"status = {positions.toml_string(status)} in the [[requirement]] with id = "
            f"{positions.toml_string(requirement_id)} by hand",
            file=path,
        )


def _entries(path: Path, text: str) -> list[dict[str, Any]]:
    data = parse_toml(text, path)
    spec = validate_model(ProductionToml, data, text, path, what="production.toml")
    return [e.model_dump(exclude_none=True) for e in spec.requirement]


_HEADER = """# Production readiness requirements (ggen lifecycle readiness).
# Built-in starter requirements are included unless `starter = false`.
# Each [[requirement]] has id, name, category (critical, important, nice-to-have),
# status (missing, placeholder, needs-review, complete) and notes.
"""


def _set_field(text: str, requirement_id: str, key: str, value: str) -> str:
    lines = text.splitlines()
    found = positions.key_lines(text)
    index = None
    for path, line in found:
        if len(path) == 3 and path[0] == "requirement" and path[2] == "id":
            raw = lines[line - 1].split("=", 1)[1].strip()
            if raw.strip("\"'").split("#")[0].strip().strip("\"'") == requirement_id:
                index = path[1]
                break
    new_line = f"{key} = {positions.toml_string(value)}"
    if index is None:
        block = ["", "[[requirement]]", f"id = {positions.toml_string(requirement_id)}", new_line]
        return "\n".join([*lines, *block]) + "\n"
    for path, line in found:
        if path == ("requirement", index, key):
            lines[line - 1] = new_line
            return "\n".join(lines) + "\n"
    header_line = next(line for path, line in found if path == ("requirement", index))
    lines.insert(header_line, new_line)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Placeholder:
    file: str
    line: int
    pattern: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "pattern": self.pattern, "text": self.text}


def _candidate_files(root: Path, include: Sequence[str], exclude: Sequence[str]) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        base = Path(dirpath).relative_to(root)
        for name in sorted(filenames):
            rel = (base / name).as_posix()
            if rel in ("make.toml", FILE.as_posix()) or name == "make.toml":
                continue
            if not any(fnmatch.fnmatch(rel, p) for p in include):
                continue
            if any(fnmatch.fnmatch(rel, p) for p in exclude):
                continue
            yield rel


def find_placeholders(
    root: Path,
    patterns: Sequence[str],
    include: Sequence[str] = ("**/*",),
    exclude: Sequence[str] = (),
) -> list[Placeholder]:
    """Lines under ``root`` matching any of ``patterns`` (regular expressions).

    Include/exclude are fnmatch patterns on paths relative to ``root`` (``*`` crosses ``/``).
    Binary files, files over 1 MiB, make.toml files and usual build/VCS directories are skipped.
    """
    compiled = [(p, _compile(p)) for p in patterns]
    include = [p if p != "**/*" else "*" for p in include]
    found: list[Placeholder] = []
    for rel in _candidate_files(root, include, exclude):
        path = root / rel
        try:
            if path.stat().st_size > MAX_SCAN_BYTES:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if b"\0" in data[:8192]:
            continue
        found.extend(_scan(rel, data.decode("utf-8", errors="replace"), compiled))
    return found


#: Seconds the patterns may take over one file (at most 1 MiB): far more than any sane pattern
#: needs, and the end of one that backtracks catastrophically (``(a+)+$``).
SCAN_SECONDS_PER_FILE = 10.0
MAX_PATTERN_LENGTH = 1000


def _compile(pattern: str) -> re.Pattern[str]:
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ReadinessError(
            f"placeholder pattern {pattern[:40]!r}... is longer than {MAX_PATTERN_LENGTH} "
            "characters: shorten it"
        )
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ReadinessError(
            f"placeholder pattern {pattern!r} is not a valid regular expression: {exc}"
        ) from None


def _scan(rel: str, text: str, compiled: list[tuple[str, re.Pattern[str]]]) -> list[Placeholder]:
    found: list[Placeholder] = []
    source, number = "", 0
    try:
        with time_limit(SCAN_SECONDS_PER_FILE):
            for number, line in enumerate(text.splitlines(), 1):
                for source, regex in compiled:
                    if regex.search(line):
                        found.append(Placeholder(rel, number, source, line.strip()[:200]))
                        break
    except DeadlineExceededError:
        raise ReadinessError(
            f"placeholder pattern {source!r} took over {SCAN_SECONDS_PER_FILE:g} s on {rel} "
            f"line {number}: it backtracks catastrophically; rewrite it without nested "
            "repetition such as (a+)+ or (a|a)*"
        ) from None
    return found


@dataclass(frozen=True)
class Verdict:
    environment: str
    ready: bool
    reasons: list[str]
    score: Score
    placeholders: list[Placeholder]
    thresholds: Thresholds
    #: (reason, what to do about it), one per reason
    remediations: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "ready": self.ready,
            "reasons": self.reasons,
            "remediations": [{"reason": r, "remediation": f} for r, f in self.remediations],
            "score": self.score.score,
            "thresholds": asdict(self.thresholds),
            "blockers": [r.id for r in self.score.blockers],
            "placeholders": len(self.placeholders),
        }


def apply_verification(
    requirements: Sequence[Requirement], verified: Mapping[str, tuple[str, bool]], file: Path
) -> list[Requirement]:
    """``requirements`` with each one a validation step verifies set by the step's outcome:
    ``complete`` when it passed, ``missing`` when it did not (whatever production.toml says)."""
    known = {r.id for r in requirements}
    for requirement_id in verified:
        if requirement_id not in known:
            raise ReadinessError(
                f"[validation] verifies names unknown requirement {requirement_id!r}"
                f"{did_you_mean(requirement_id, known)}; declare it in {FILE} or fix the name",
                file=file,
            )
    out: list[Requirement] = []
    for r in requirements:
        if r.id in verified:
            step, passed = verified[r.id]
            status = "complete" if passed else "missing"
            note = f"verified by step {step!r}" if passed else f"step {step!r} did not pass"
            r = replace(r, status=status, notes=note)
        out.append(r)
    return out


def validate(
    root: Path,
    environment: str,
    thresholds: Thresholds,
    patterns: Sequence[str],
    include: Sequence[str],
    exclude: Sequence[str],
    *,
    verified: Mapping[str, tuple[str, bool]] | None = None,
    config_file: Path | None = None,
) -> Verdict:
    """Apply ``thresholds`` to the project's readiness; ``reasons`` says what is short.

    ``verified`` maps requirement ids to (step, passed) of a production validation's steps.
    """
    requirements = load_requirements(root)
    if verified:
        requirements = apply_verification(requirements, verified, config_file or root)
    result = score(requirements)
    placeholders = find_placeholders(root, patterns, include, exclude)
    found: list[tuple[str, str]] = []
    if result.score < thresholds.min_score:
        found.append(
            (
                f"score {result.score:g} is below the minimum {thresholds.min_score:g}",
                "complete more requirements (ggen lifecycle readiness --detailed lists them)",
            )
        )
    if thresholds.critical_complete:
        for blocker in result.blockers:
            found.append(
                (
                    f"critical requirement {blocker.id!r} is {blocker.status}",
                    f"do it, then `ggen lifecycle readiness-update {blocker.id} needs-review` and "
                    f"`... {blocker.id} complete` once reviewed (or name a step that verifies it in"
                    " [validation] verifies)",
                )
            )
    if thresholds.max_placeholders is not None and len(placeholders) > thresholds.max_placeholders:
        first = ", ".join(f"{p.file}:{p.line}" for p in placeholders[:5])
        found.append(
            (
                f"{len(placeholders)} placeholders found, at most {thresholds.max_placeholders} "
                f"allowed ({first}{', ...' if len(placeholders) > 5 else ''})",
                "replace the placeholder code that `ggen lifecycle placeholders` lists",
            )
        )
    reasons = [reason for reason, _ in found]
    return Verdict(environment, not reasons, reasons, result, placeholders, thresholds, found)
