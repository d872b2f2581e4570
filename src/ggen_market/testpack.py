"""Test gpacks: the ``[cleanroom]``, ``[fixtures]`` and ``[scenarios]`` sections.

A test gpack ships ``*.scenario.toml`` files and pytest fixture modules. They are validated when
the gpack is packed, indexed or installed; :func:`installed_test_packs` is what pytest-cleanroom's
loader calls to find them through ``ggen.lock`` once ``ggen market add`` installed them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ManifestError
from .lockfile import LOCK_NAME, read_lock
from .manifest import Manifest, load_manifest, matching_files
from .test_sections import CleanroomSection

if TYPE_CHECKING:
    from pytest_cleanroom.scenarios.files import ScenarioVariant


def load_scenario(path: Path) -> list[ScenarioVariant]:
    """Parse and validate one scenario file with the scenario engine's own parser.

    One parser serves ``ggen market pack/index/add`` and pytest's collection, so a file the
    market accepts is exactly a file pytest can run. Errors name the file and line.
    """
    from pytest_cleanroom.scenarios.files import ScenarioFileError, load_scenario_file

    try:
        return load_scenario_file(path)
    except ScenarioFileError as exc:
        raise ManifestError(str(exc)) from None


def check_test_sections(root: Path, manifest: Manifest) -> list[Path]:
    """Validate every scenario file of the gpack at ``root``; returns the scenario paths."""
    if manifest.scenarios is None:
        return []
    paths = matching_files(root, manifest.scenarios.patterns)
    for key, rel in sorted(manifest.scenarios.named.items()):
        named = root / rel
        if not named.is_file():
            raise ManifestError(
                f"{root / 'gpack.toml'}: [scenarios] {key}: no scenario file {rel!r} in the gpack"
            )
        if not named.resolve().is_relative_to(root.resolve()):
            raise ManifestError(f"{named}: links outside the gpack {root} ([scenarios] {key})")
        if named not in paths:
            paths.append(named)
    for path in paths:
        load_scenario(path)
    return paths


@dataclass(frozen=True)
class InstalledTestPack:
    """A test gpack installed in a project: where its scenarios and fixtures are."""

    id: str
    version: str
    root: Path
    cleanroom: CleanroomSection
    scenarios: tuple[Path, ...]
    fixtures: tuple[Path, ...]


def installed_test_packs(project: Path) -> list[InstalledTestPack]:
    """Test gpacks pinned in ``project``'s ``ggen.lock``, sorted by id (empty without a lock)."""
    lock = read_lock(project / LOCK_NAME)
    if lock is None:
        return []
    found: list[InstalledTestPack] = []
    for pid in sorted(lock.packages):
        pkg = lock.packages[pid]
        if not pkg.test_pack:
            continue
        root = pkg.install_dir(project)
        manifest = load_manifest(root)
        found.append(
            InstalledTestPack(
                id=pid,
                version=pkg.version,
                root=root,
                cleanroom=manifest.cleanroom or CleanroomSection(),
                scenarios=tuple(check_test_sections(root, manifest)),
                fixtures=tuple(
                    matching_files(root, manifest.fixtures.patterns) if manifest.fixtures else ()
                ),
            )
        )
    return found
