"""Checks run when a gpack is packed or indexed: every template parses and compiles."""

from __future__ import annotations

from pathlib import Path

from ..errors import TemplateError
from ..manifest import Manifest
from .data import gpack_file
from .frontmatter import parse_template
from .generate import gpack_templates
from .sandbox import make_environment


def check_templates(root: Path, manifest: Manifest) -> None:
    """Raise :class:`TemplateError` for the first template that does not parse or compile."""
    from jinja2 import TemplateSyntaxError

    env = make_environment(root)
    for template in gpack_templates(root, manifest):
        source = parse_template(template.path)
        try:
            env.parse(source.body)
            env.parse(source.front.to or "")
        except TemplateSyntaxError as exc:
            line = source.body_line + (exc.lineno or 1) - 1
            raise TemplateError(
                f"{template.path}:{line}: template syntax error: {exc.message}"
            ) from None
        for entry in source.front.rdf:
            gpack_file(template, entry, "rdf")  # looked up as generation looks it up
