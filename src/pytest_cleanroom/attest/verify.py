"""Verify an attestation directory (or one envelope): signatures, file names, subjects' digests.

Every problem is reported with the file it concerns. The directory's run statement lists the
sha256 of every per-test envelope, so an envelope added, removed, renamed or edited is caught even
where its own signature would still hold.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..host_files import kind, read_regular
from . import dsse, statement, store
from .digests import file_digest, take_snapshot, tree_digest
from .keys import KeyFileError, VerifyingKey


@dataclass
class FileCheck:
    """The verdict on one envelope file."""

    file: str
    kind: str = "unknown"  # "test", "run" or "unknown" (unreadable before its type was known)
    nodeid: str | None = None
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked_files: int = 0
    summary: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "kind": self.kind,
            "nodeid": self.nodeid,
            "ok": self.ok,
            "errors": self.errors,
            "notes": self.notes,
            "checked_files": self.checked_files,
            "summary": self.summary,
        }


@dataclass
class Verification:
    """The verdict on a directory or file; ``ok`` only when nothing at all failed."""

    target: str
    keyid: str | None = None
    key_source: str | None = None
    checks: list[FileCheck] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and all(c.ok for c in self.checks)

    def failures(self) -> list[str]:
        """Every error message, each naming its file."""
        return [*self.errors, *(e for c in self.checks for e in c.errors)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "target": self.target,
            "key": {"keyid": self.keyid, "source": self.key_source},
            "errors": self.errors,
            "files": [c.to_dict() for c in self.checks],
        }


#: The largest envelope read; a test's envelope is a few KiB.
MAX_ENVELOPE_BYTES = 64 * 1024 * 1024


def verify(
    target: str | os.PathLike[str],
    *,
    key: str | os.PathLike[str] | None = None,
    workspace: str | os.PathLike[str] | None = None,
    progress: Callable[[FileCheck], None] | None = None,
) -> Verification:
    """Verify ``target`` (a directory of envelopes, or one envelope file).

    ``key`` is the trusted public key (PEM); without it the public key written beside the
    envelopes is used, which proves integrity but not who signed. ``workspace`` replaces the
    workspace path each test recorded when checking subjects. ``progress`` is called with each
    test envelope's verdict as soon as it is known (the run envelope's comes last, in the report).
    """
    path = Path(target)
    if path.is_dir() and (path / "shards").is_dir() and (path / store.RUN_ENVELOPE).is_file():
        from .merge import verify_merged  # a merged sharded run (ggen attest merge)

        report: Verification = verify_merged(
            path, key=Path(key) if key is not None else None, progress=progress
        )
        return report
    report = Verification(target=str(path))
    if path.is_dir():
        directory, files = path, _envelope_files(path)
        if not files:
            report.errors.append(f"{path}: no attestation envelopes (*{store.ENVELOPE_SUFFIX})")
            return report
    elif path.is_file():
        directory, files = path.parent, [path]
    elif path.exists():
        report.errors.append(
            f"{path}: a {kind(path.stat().st_mode)}, not an envelope file or a directory of them"
        )
        return report
    else:
        report.errors.append(f"{path}: no such file or directory")
        return report

    trusted = _trusted_key(directory, key, report)
    if trusted is None:
        return report
    workspace_path = Path(workspace) if workspace is not None else None
    if workspace_path is not None and not workspace_path.is_dir():
        report.errors.append(f"{workspace_path}: --workspace is not a directory")
        return report

    run_subjects: dict[str, str] | None = None
    run_check: FileCheck | None = None
    for envelope_path in files:
        check, subjects = _check_envelope(envelope_path, trusted, workspace_path)
        report.checks.append(check)
        if check.kind == "run" and subjects is not None:
            run_subjects, run_check = subjects, check
        elif progress is not None and check.kind != "run":
            progress(check)
    if path.is_dir() or (run_check is not None):
        _check_run_listing(directory, run_subjects, run_check, report)
    return report


def _envelope_files(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.iterdir()
        if p.name.endswith(store.ENVELOPE_SUFFIX) and not p.name.startswith(".")
    )


def _trusted_key(
    directory: Path, key: str | os.PathLike[str] | None, report: Verification
) -> VerifyingKey | None:
    beside = directory / store.PUBLIC_KEY_FILE
    try:
        if key is not None:
            trusted = VerifyingKey.load(key)
            report.key_source = f"--key {os.fspath(key)}"
            if beside.exists():
                try:
                    found = VerifyingKey.load(beside)
                except KeyFileError as exc:
                    report.errors.append(str(exc))
                else:
                    if found.keyid != trusted.keyid:
                        report.errors.append(
                            f"{beside}: public key {found.keyid[:16]} is not the trusted key "
                            f"{trusted.keyid[:16]} given by --key"
                        )
        elif beside.exists():
            trusted = VerifyingKey.load(beside)
            report.key_source = f"{beside} (found beside the envelopes, not independently trusted)"
        else:
            report.errors.append(f"{beside}: missing; pass the trusted public key with --key")
            return None
    except KeyFileError as exc:
        report.errors.append(str(exc))
        return None
    report.keyid = trusted.keyid
    return trusted


def _check_envelope(
    path: Path, key: VerifyingKey, workspace: Path | None
) -> tuple[FileCheck, dict[str, str] | None]:
    check = FileCheck(file=str(path))
    try:
        raw = read_regular(path, max_bytes=MAX_ENVELOPE_BYTES)
    except OSError as exc:
        check.errors.append(f"{path}: cannot read: {exc.strerror or exc}")
        return check, None
    try:
        envelope = dsse.parse_envelope(raw)
    except dsse.EnvelopeError as exc:
        check.errors.append(f"{path}: {exc}")
        return check, None
    if envelope.payload_type != dsse.PAYLOAD_TYPE:
        check.errors.append(
            f"{path}: payloadType {envelope.payload_type!r} is not {dsse.PAYLOAD_TYPE!r}"
        )
        return check, None
    mine = [s for s in envelope.signatures if s.keyid == key.keyid]
    if not mine:
        others = ", ".join(s.keyid[:16] for s in envelope.signatures)
        check.errors.append(
            f"{path}: not signed by the trusted key {key.keyid[:16]} (signed by {others})"
        )
        return check, None
    message = envelope.pae()
    if not all(key.verify(s.sig, message) for s in mine):
        check.errors.append(
            f"{path}: signature does not verify with key {key.keyid[:16]} "
            "(the payload or the signature was changed)"
        )
        return check, None
    try:
        data = json.loads(envelope.payload)
        return check, _check_statement(path, data, check, workspace)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        check.errors.append(f"{path}: signed payload is not a statement this tool wrote ({reason})")
        return check, None


def _check_statement(
    path: Path, data: dict[str, Any], check: FileCheck, workspace: Path | None
) -> dict[str, str] | None:
    if data["_type"] != statement.STATEMENT_TYPE:
        raise ValueError(f"_type is {data['_type']!r}")
    predicate_type = data["predicateType"]
    if predicate_type == statement.TEST_RESULT:
        check.kind = "run"
        if path.name != store.RUN_ENVELOPE:
            check.errors.append(
                f"{path}: holds the run statement but is not named {store.RUN_ENVELOPE}"
            )
        predicate = data["predicate"]
        check.summary = {
            "result": predicate["result"],
            "passed": len(predicate.get("passedTests", [])),
            "warned": len(predicate.get("warnedTests", [])),
            "failed": len(predicate.get("failedTests", [])),
        }
        return {s["name"]: s["digest"]["sha256"] for s in data["subject"]}
    if predicate_type == statement.VALIDATION:
        _check_validation(path, data, check, workspace)
        return None
    if predicate_type != statement.SLSA_PROVENANCE:
        raise ValueError(f"predicateType {predicate_type!r} is not known")
    check.kind = "test"
    build = data["predicate"]["buildDefinition"]
    nodeid = str(build["externalParameters"]["test"])
    check.nodeid = nodeid
    expected_name = store.envelope_filename(nodeid)
    if path.name != expected_name:
        check.errors.append(f"{path}: attests {nodeid!r}, whose envelope is named {expected_name}")
    recorded = build["internalParameters"].get("workspace")
    root = workspace if workspace is not None else Path(recorded) if recorded else None
    if root is None or not root.is_dir():
        check.notes.append(
            f"workspace {recorded} no longer exists: subjects not checked (pass --workspace)"
            if recorded
            else "no workspace recorded: subjects not checked"
        )
        return None
    _check_workspace(path, data, root, check)
    return None


def _check_validation(
    path: Path, data: dict[str, Any], check: FileCheck, workspace: Path | None
) -> None:
    """A validation statement (of a gpack, or of a project before a deploy): its subjects'
    files are checked in ``workspace`` when one is given (e.g. the folder of the archive)."""
    check.kind = "validation"
    predicate = data["predicate"]
    outcomes = [step["outcome"] for step in predicate["steps"]]
    check.nodeid = str(predicate.get("kind"))
    check.summary = {
        "result": predicate["result"],
        "passed": outcomes.count("passed"),
        "warned": outcomes.count("skipped"),
        "failed": outcomes.count("failed"),
    }
    if workspace is None:
        check.notes.append("subjects not checked (pass --workspace DIR holding them)")
        return
    for subject in data["subject"]:
        _check_file(path, workspace, subject["name"], subject["digest"]["sha256"], "subject", check)


def _check_workspace(path: Path, data: dict[str, Any], root: Path, check: FileCheck) -> None:
    subjects = data["subject"]
    names = {s["name"] for s in subjects}
    removed: set[str] = set()
    for byproduct in data["predicate"]["runDetails"].get("byproducts", []):
        if byproduct.get("name") == "workspace":
            removed = set(byproduct.get("annotations", {}).get("removed", []))
    for subject in subjects:
        kind = subject.get("annotations", {}).get(statement.KIND_ANNOTATION)
        expected = subject["digest"]["sha256"]
        if kind == statement.WORKSPACE_TREE_SUBJECT:
            found = take_snapshot(root)
            tree = tree_digest(found.digests()).removeprefix("sha256:")
            check.checked_files += len(found.files)
            if tree != expected:
                check.errors.append(
                    f"{root}: the workspace tree differs from the attested one "
                    f"(attested by {path.name})"
                )
            continue
        _check_file(path, root, subject["name"], expected, "output", check)
    for dependency in data["predicate"]["buildDefinition"].get("resolvedDependencies", []):
        name = dependency["name"]
        if name not in names and name not in removed:
            _check_file(path, root, name, dependency["digest"]["sha256"], "input", check)


def _check_file(
    envelope: Path, root: Path, name: str, expected: str, role: str, check: FileCheck
) -> None:
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts or not name or "\0" in name:
        check.errors.append(f"{envelope}: {role} name {name!r} is not a path inside the workspace")
        return
    target = root / relative
    check.checked_files += 1
    try:
        found = file_digest(target)
    except FileNotFoundError:
        check.errors.append(f"{target}: {role} file missing (attested by {envelope.name})")
        return
    except OSError as exc:
        check.errors.append(f"{target}: cannot read the {role} file: {exc.strerror}")
        return
    if found != expected:
        check.errors.append(
            f"{target}: {role} file changed: sha256 {found[:16]}..., attested {expected[:16]}... "
            f"(by {envelope.name})"
        )


def _check_run_listing(
    directory: Path,
    listed: dict[str, str] | None,
    run_check: FileCheck | None,
    report: Verification,
) -> None:
    run_path = directory / store.RUN_ENVELOPE
    if run_check is None:
        if not run_path.exists():
            report.errors.append(
                f"{run_path}: missing, so envelopes added or removed cannot be detected "
                "(was the run interrupted?)"
            )
        return
    if listed is None:
        return  # the run envelope itself failed; its error is already reported
    present = {p.name: p for p in _envelope_files(directory) if p.name != store.RUN_ENVELOPE}
    for name, expected in sorted(listed.items()):
        envelope = present.get(name)
        if envelope is None:
            run_check.errors.append(
                f"{directory / name}: listed by {store.RUN_ENVELOPE} but missing"
            )
            continue
        try:
            found = hashlib.sha256(read_regular(envelope, max_bytes=MAX_ENVELOPE_BYTES)).hexdigest()
        except OSError as exc:
            run_check.errors.append(f"{envelope}: cannot read: {exc.strerror or exc}")
            continue
        if found != expected:
            run_check.errors.append(
                f"{envelope}: differs from the sha256 {store.RUN_ENVELOPE} records for it"
            )
    for name in sorted(set(present) - set(listed)):
        run_check.errors.append(
            f"{present[name]}: not listed by {store.RUN_ENVELOPE} (added after the run?)"
        )
