"""Tera's tags and call syntax in Jinja2: ``set_global``, ``break``/``continue``, ``self::macro()``.

* ``{% set_global x = ... %}`` sets ``x`` for the whole template, also from inside a loop (where
  Jinja2's ``set`` is local to the loop body). Every use of such a name reads one namespace
  object that the template creates first; a plain ``set`` of the same name writes it too.
* ``{% break %}`` and ``{% continue %}`` are Jinja2's ``loopcontrols`` extension.
* ``{{ self::name(...) }}`` calls a macro of the same template, ``{{ mod::name(...) }}`` one of
  ``{% import "file" as mod %}``: rewritten to Jinja2's ``name(...)`` / ``mod.name(...)``,
  inside ``{{ }}`` and ``{% %}`` only (``::`` in the text around them is left alone).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.visitor import NodeTransformer

if TYPE_CHECKING:
    from jinja2.parser import Parser

GLOBALS = "tera_globals"
_BLOCK = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_PATH_CALL = re.compile(r"\b([A-Za-z_]\w*)::([A-Za-z_]\w*)(\s*\()")


def _rewrite_calls(block: re.Match[str]) -> str:
    def call(found: re.Match[str]) -> str:
        module, name, paren = found.groups()
        return f"{name}{paren}" if module == "self" else f"{module}.{name}{paren}"

    return _PATH_CALL.sub(call, block.group(0))


class TeraExtension(Extension):
    """The ``set_global`` tag and the ``module::macro()`` call syntax."""

    tags = {"set_global"}

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        return _BLOCK.sub(_rewrite_calls, source) if "::" in source else source

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        target = parser.parse_assign_target(name_only=True)
        parser.stream.expect("assign")
        value = parser.parse_tuple()
        assert isinstance(target, nodes.Name)
        return nodes.Assign(nodes.NSRef(GLOBALS, target.name), value, lineno=lineno)


def _global_names(template: nodes.Template) -> set[str]:
    return {ref.attr for ref in template.find_all(nodes.NSRef) if ref.name == GLOBALS}


class _ToNamespace(NodeTransformer):
    """Reads and plain ``set`` of global names go through the namespace object."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def visit_Name(self, node: nodes.Name) -> nodes.Node:  # noqa: N802 - NodeTransformer API
        if node.name not in self.names:
            return node
        if node.ctx == "store":
            return nodes.NSRef(GLOBALS, node.name, lineno=node.lineno)
        if node.ctx == "load":
            return nodes.Getattr(nodes.Name(GLOBALS, "load"), node.name, "load", lineno=node.lineno)
        return node


def lift_globals(template: nodes.Template) -> nodes.Template:
    """Give ``set_global`` names one namespace for the whole template (see the module doc)."""
    names = _global_names(template)
    if not names:
        return template
    result: Any = _ToNamespace(names).visit(template)
    create = nodes.Assign(
        nodes.Name(GLOBALS, "store"),
        nodes.Call(nodes.Name("namespace", "load"), [], [], None, None),
        lineno=1,
    )
    result.body.insert(0, create)
    result.set_environment(template.environment)
    return result  # type: ignore[no-any-return]
