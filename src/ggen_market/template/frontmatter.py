"""Template files: a YAML front matter between ``---`` lines, then the Jinja2 body."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

from pytest_cleanroom.config_errors.suggest import typo_of

from ..errors import TemplateError
from ..validation import format_validation_error

TEMPLATE_SUFFIX = ".tmpl"


def _one_or_list(value: Any) -> Any:
    """ggen writes ``rdf: a.ttl`` for ``rdf: [a.ttl]``."""
    return [value] if isinstance(value, str) else value


def _named_queries(value: Any) -> Any:
    """ggen's ``sparql:`` forms: one query (named ``default``), a list (``query_0``, ...), or a
    mapping of name -> query."""
    if isinstance(value, str):
        return {"default": value}
    if isinstance(value, list):
        return {f"query_{i}": query for i, query in enumerate(value)}
    return value


def _variables(value: Any) -> Any:
    """ggen also writes ``vars: [name, version]``: names the caller gives with ``--var``."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return {}
    return value


StrList = Annotated[list[str], BeforeValidator(_one_or_list)]


class FrontMatter(BaseModel):
    """What a template declares about its output (see docs/templates.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``None``: the template's name (its path under ``templates/`` without ``.tmpl``), where
    #: ggen takes the output path from its command line (``-o``)
    to: str | None = None
    description: str = ""
    vars: Annotated[dict[str, Any], BeforeValidator(_variables)] = {}
    rdf: StrList = []
    rdf_inline: StrList = []
    prefixes: dict[str, str] = {}
    base: str | None = None
    sparql: Annotated[dict[str, str], BeforeValidator(_named_queries)] = {}
    for_each: str | None = None
    skip_empty: bool = False
    shape: StrList = []
    determinism: bool | dict[str, Any] | None = None
    freeze_policy: Literal["never", "always", "checksum"] | None = None
    freeze_slots_dir: str | None = None
    sh_before: str | None = None
    sh_after: str | None = None
    force: bool = False
    unless_exists: bool = False
    skip_if: str | None = None
    inject: bool = False
    before: str | None = None
    after: str | None = None
    append: bool = False
    prepend: bool = False

    @model_validator(mode="after")
    def _coherent(self) -> FrontMatter:
        where = [n for n in ("before", "after", "append", "prepend") if getattr(self, n)]
        if self.inject and len(where) != 1:
            raise ValueError(
                "inject: true needs exactly one of before, after, append, prepend"
                f" (got {', '.join(where) or 'none'})"
            )
        if not self.inject and where:
            raise ValueError(f"{where[0]} only applies with inject: true")
        if self.force and self.unless_exists:
            raise ValueError("force and unless_exists contradict each other")
        if self.to is not None and not self.to.strip():
            raise ValueError("to: must name an output path")
        if self.freeze_policy == "checksum" and not self.freeze_slots_dir:
            raise ValueError(
                "freeze_policy: checksum needs freeze_slots_dir (where the checksums are kept)"
            )
        if self.for_each is not None and self.for_each not in self.sparql:
            raise ValueError(
                f"for_each: {self.for_each!r} names no query of sparql:"
                f" (queries: {', '.join(sorted(self.sparql)) or 'none'})"
            )
        return self


@dataclass(frozen=True)
class TemplateSource:
    """A parsed template file: front matter, body and the line the body starts on."""

    path: Path
    front: FrontMatter
    body: str
    body_line: int
    #: keys of other tools' front matter (ggen ignores unknown keys), left out
    ignored: tuple[str, ...] = ()


#: Values a front matter may hold once its aliases are expanded, and how deep they may nest.
MAX_FRONT_MATTER_VALUES = 100_000
MAX_FRONT_MATTER_DEPTH = 50


def _check_size(path: Path, data: Any) -> None:
    """Refuse a front matter whose YAML aliases expand to a huge tree ("billion laughs") or that
    nests deeper than any template needs, before anything walks it."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    seen = 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > MAX_FRONT_MATTER_VALUES or depth > MAX_FRONT_MATTER_DEPTH:
            raise TemplateError(
                f"{path}: front matter too large or too deep (over {MAX_FRONT_MATTER_VALUES} "
                f"values or {MAX_FRONT_MATTER_DEPTH} levels, aliases expanded)"
            )
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def parse_template(path: Path, text: str | None = None) -> TemplateSource:
    """Split and validate a template file; errors name the file and the front-matter key."""
    import yaml

    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(f"{path}: cannot read the template ({exc})") from None
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n") != "---":
        raise TemplateError(f"{path}: a template starts with a '---' line and a YAML front matter")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].rstrip("\r\n") == "---")
    except StopIteration:
        raise TemplateError(f"{path}: the front matter is not closed by a '---' line") from None
    try:
        data = yaml.safe_load("".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: front matter is not valid YAML: {exc}") from None
    except (ValueError, RecursionError) as exc:  # a 5,000-digit integer, deep nesting
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise TemplateError(f"{path}: front matter cannot be read: {reason}") from None
    if not isinstance(data, dict):
        raise TemplateError(f"{path}: the front matter must be a YAML mapping (key: value)")
    _check_size(path, data)
    known = list(FrontMatter.model_fields)
    ignored = tuple(str(k) for k in data if k not in known and typo_of(str(k), known) is None)
    data = {k: v for k, v in data.items() if k not in ignored}
    try:
        front = FrontMatter.model_validate(data)
    except ValidationError as exc:
        error = format_validation_error(path, FrontMatter, exc, section="front matter")
        raise TemplateError(str(error)) from None
    body = "".join(lines[end + 1 :])
    return TemplateSource(path=path, front=front, body=body, body_line=end + 2, ignored=ignored)
