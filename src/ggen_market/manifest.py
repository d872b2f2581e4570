"""The gpack manifest, ``gpack.toml``: a pydantic model that refuses unknown keys with a hint.

Everything a gpack brings is untrusted input: ids, versions and ranges are validated, file
patterns must stay inside the gpack, and files they match may not be links leaving it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from pytest_cleanroom.config_errors.pydantic_errors import LazyModel

from .errors import ManifestError
from .ids import check_id
from .validation import format_validation_error, read_toml
from .versions import parse_range, parse_version

if TYPE_CHECKING:
    from .test_sections import CleanroomSection, FixturesSection, ScenariosSection
    from .trust.section import ValidationSection

    CleanroomTable: TypeAlias = CleanroomSection | None
    ValidationTable: TypeAlias = ValidationSection | None
    FixturesTable: TypeAlias = FixturesSection | None
    ScenariosTable: TypeAlias = ScenariosSection | None
else:
    # The sections of test gpacks have their own models (ggen_market.test_sections), built only
    # when a gpack.toml has one of them: a plain gpack, what `ggen market add` mostly validates,
    # does not pay for building them. Errors inside keep their key path and suggestions.
    CleanroomTable = Annotated[
        Any, BeforeValidator(LazyModel("ggen_market.test_sections", "CleanroomSection"))
    ]
    FixturesTable = Annotated[
        Any, BeforeValidator(LazyModel("ggen_market.test_sections", "FixturesSection"))
    ]
    ScenariosTable = Annotated[
        Any, BeforeValidator(LazyModel("ggen_market.test_sections", "ScenariosSection"))
    ]
    ValidationTable = Annotated[
        Any, BeforeValidator(LazyModel("ggen_market.trust.section", "ValidationSection"))
    ]

MANIFEST_NAME = "gpack.toml"

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def check_pattern(value: str) -> str:
    """A glob relative to the gpack root that cannot leave it, and that matches in linear time
    (at most :data:`MAX_RECURSIVE` ``**`` parts, at most 256 characters)."""
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or "\\" in value:
        raise ValueError(f"pattern {value!r} must be relative to the gpack and must not use '..'")
    if (
        len(value) > 256
        or sum(part == "**" for part in _collapse(value).split("/")) > MAX_RECURSIVE
    ):
        raise ValueError(
            f"pattern {value[:60]!r}: at most {MAX_RECURSIVE} '**' parts and 256 characters"
        )
    return value


#: ``**`` parts one pattern may hold (each multiplies the work of matching a path).
MAX_RECURSIVE = 3
#: Entries of a gpack looked at when matching its patterns.
MAX_WALK_ENTRIES = 100_000


def _collapse(pattern: str) -> str:
    """``a/**/**/b`` is ``a/**/b``."""
    parts: list[str] = []
    for part in pattern.split("/"):
        if part == "**" and parts and parts[-1] == "**":
            continue
        parts.append(part)
    return "/".join(parts)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex for a ``pathlib``-style glob over POSIX relative file paths: ``**`` any number
    of directories (a final one, directories only: no file), ``*`` and ``?`` within one name,
    ``[...]`` a class."""
    out: list[str] = []
    parts = _collapse(pattern).split("/")
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out.append("(?!)" if last else "(?:[^/]+/)*")  # a final ** names directories only
            continue
        out.append(_segment_regex(part) + ("" if last else "/"))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _segment_regex(segment: str) -> str:
    out = []
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and "]" in segment[i + 2 :]:
            end = segment.index("]", i + 2)
            body = segment[i + 1 : end].replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpackInfo(_Section):
    """The ``[gpack]`` table: identity and search metadata."""

    id: str
    name: str = Field(min_length=1)
    version: str
    description: str = ""
    license: str = ""
    authors: list[str] = []
    category: str = "general"
    tags: list[str] = []
    keywords: list[str] = []
    homepage: str = ""
    ggen_compat: str = "*"

    _id = field_validator("id")(check_id)

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        parse_version(value)
        return value

    @field_validator("ggen_compat")
    @classmethod
    def _compat(cls, value: str) -> str:
        parse_range(value)
        return value

    @field_validator("category")
    @classmethod
    def _category(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError(f"{value!r} must be a lowercase slug such as 'python' or 'testing'")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not _SLUG.match(tag):
                raise ValueError(f"tag {tag!r} must be a lowercase slug such as 'cli'")
        return value


class PatternSection(_Section):
    """A table with file ``patterns`` (globs relative to the gpack root)."""

    patterns: list[str] = []

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        return [check_pattern(p) for p in value]


class TemplatesSection(PatternSection):
    """``[templates]``: template files (front matter + Jinja2 body)."""

    patterns: list[str] = ["templates/**/*.tmpl"]


class RdfSection(PatternSection):
    """``[rdf]``: graph files, namespace prefixes bound in every query, and a base IRI."""

    patterns: list[str] = ["rdf/**/*.ttl"]
    prefixes: dict[str, str] = {}
    base: str | None = None


class QueriesSection(PatternSection):
    """``[queries]``: SPARQL files templates may refer to by name."""

    patterns: list[str] = ["queries/**/*.rq"]


class Manifest(_Section):
    """A parsed ``gpack.toml``. Sections that are absent get their defaults."""

    gpack: GpackInfo
    dependencies: dict[str, str] = {}
    templates: TemplatesSection = TemplatesSection()
    rdf: RdfSection = RdfSection()
    queries: QueriesSection = QueriesSection()
    cleanroom: CleanroomTable = None
    fixtures: FixturesTable = None
    scenarios: ScenariosTable = None
    validation: ValidationTable = None

    @field_validator("dependencies")
    @classmethod
    def _dependencies(cls, value: dict[str, str]) -> dict[str, str]:
        for dep_id, rng in value.items():
            check_id(dep_id)
            parse_range(rng, what=f"range of {dep_id!r}")
        return value

    @property
    def id(self) -> str:
        return self.gpack.id

    @property
    def version(self) -> str:
        return self.gpack.version

    @property
    def is_test_pack(self) -> bool:
        """Whether the gpack brings scenarios or fixtures for pytest-cleanroom."""
        return any(s is not None for s in (self.cleanroom, self.fixtures, self.scenarios))


def parse_manifest(data: dict[str, Any], path: Path, *, text: str | None = None) -> Manifest:
    """Validate already-parsed TOML ``data`` read from ``path`` (``text``: its source, for the
    lines of errors)."""
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise format_validation_error(path, Manifest, exc, text=text) from None


def load_manifest(path: Path) -> Manifest:
    """Read ``path`` (a ``gpack.toml`` or the gpack directory holding one)."""
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{path}: no {MANIFEST_NAME} here (a gpack directory needs one)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        text = None  # read_toml names the byte
    return parse_manifest(read_toml(path, text=text), path, text=text)


def matching_files(root: Path, patterns: list[str]) -> list[Path]:
    """Files under ``root`` matching ``patterns``, sorted; refuses links that leave ``root``.

    One walk of the gpack that never follows a directory link (so a link to an ancestor is no
    loop), at most :data:`MAX_WALK_ENTRIES` entries, each path matched by linear-time regexes.
    """
    real_root = root.resolve()
    compiled = [(pattern, _glob_regex(pattern)) for pattern in patterns]
    found: set[Path] = set()
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        seen += len(dirnames) + len(filenames)
        if seen > MAX_WALK_ENTRIES:
            raise ManifestError(f"{root}: more than {MAX_WALK_ENTRIES} entries; not a gpack")
        base = Path(dirpath)
        for name in filenames + [d for d in dirnames if (base / d).is_symlink()]:
            candidate = base / name
            rel = candidate.relative_to(root).as_posix()
            pattern = next((p for p, regex in compiled if regex.match(rel)), None)
            if pattern is None or not candidate.is_file():
                continue
            if not candidate.resolve().is_relative_to(real_root):
                raise ManifestError(
                    f"{candidate}: links outside the gpack {root} (matched by pattern {pattern!r})"
                )
            found.add(candidate)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())
