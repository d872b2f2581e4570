"""The inputs of a production validation: the project files it validates, their digests, and the
fresh copy of them the steps run in."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import files
from .steps import output_globs

if TYPE_CHECKING:
    from ..config import Project
    from ..model import ProductionValidationSpec


@dataclass(frozen=True)
class Inputs:
    """``digests`` maps each input's path (relative to the project) to its sha256."""

    digests: dict[str, str]

    @property
    def digest(self) -> str:
        """``sha256:`` over every path and content digest: what the statement is about."""
        from pytest_cleanroom.attest.digests import tree_digest

        return tree_digest(self.digests)

    def changes_from(self, recorded: dict[str, str]) -> list[str]:
        """``changed a``, ``added b``, ``removed c``: how these inputs differ from ``recorded``."""
        out = [
            f"changed {p}"
            for p in sorted(self.digests)
            if p in recorded and recorded[p] != self.digests[p]
        ]
        out += [f"added {p}" for p in sorted(set(self.digests) - set(recorded))]
        out += [f"removed {p}" for p in sorted(set(recorded) - set(self.digests))]
        return out


def patterns(project: Project, spec: ProductionValidationSpec) -> list[str]:
    """``inputs`` minus every phase's declared outputs."""
    return [*spec.inputs, *("!" + glob for glob in output_globs(project))]


def collect(project: Project, spec: ProductionValidationSpec) -> Inputs:
    """The project's input files now (``.git`` and ``.ggen`` are never inputs)."""
    found, _ = files.expand(project.root, patterns(project, spec))
    return Inputs(dict(files.hash_files(project.root, found)))


def copy_into(project: Project, spec: ProductionValidationSpec, destination: Path) -> Inputs:
    """A fresh tree in ``destination`` holding exactly the inputs (modes kept, links resolved);
    the digests are of the bytes copied, so a file edited meanwhile cannot be misattested."""
    import hashlib

    found, _ = files.expand(project.root, patterns(project, spec))
    digests: dict[str, str] = {}
    for rel in found:
        target = destination / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with open(project.root / rel, "rb") as source, open(target, "xb") as out:
            while block := source.read(files.CHUNK):
                digest.update(block)
                out.write(block)
            os.fchmod(out.fileno(), os.fstat(source.fileno()).st_mode & 0o755)
        digests[rel] = digest.hexdigest()
    return Inputs(digests)
