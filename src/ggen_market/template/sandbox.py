"""The Jinja2 environment templates render in: sandboxed, immutable, strict about undefined names.

* ``ImmutableSandboxedEnvironment``: no access to ``_private`` or internal attributes
  (``__class__``, ``__globals__``, ``mro``, ``func_globals`` ...), no calling of unsafe callables,
  no mutating of the lists and dicts templates receive.
* ``StrictUndefined``: using a variable nobody defined is an error, not an empty string.
* ``{% include %}``/``{% import %}`` read only files inside the gpack itself.
* Templates get plain data only (strings, numbers, lists, dicts of SPARQL rows): never an rdflib
  graph or any object with methods that reach files or the network.
* Templates written for ggen (Tera) work as they are: Tera's named-argument filters, its tests,
  ``set_global``, ``break``/``continue`` and ``self::macro()`` (see tera_filters, tera_syntax).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from jinja2 import Environment

    from .limits import BoundedSandbox


def _words(text: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(text))
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


def snake(text: str) -> str:
    """``Hello World`` / ``helloWorld`` -> ``hello_world``."""
    return "_".join(w.lower() for w in _words(text))


def kebab(text: str) -> str:
    """``Hello World`` -> ``hello-world``."""
    return "-".join(w.lower() for w in _words(text))


def pascal(text: str) -> str:
    """``hello world`` -> ``HelloWorld``."""
    return "".join(w[:1].upper() + w[1:].lower() for w in _words(text))


def camel(text: str) -> str:
    """``hello world`` -> ``helloWorld``."""
    name = pascal(text)
    return name[:1].lower() + name[1:]


def local_name(iri: str) -> str:
    """The part of an IRI after its last ``#`` or ``/``."""
    return re.split(r"[#/]", str(iri).rstrip("/#"))[-1]


def pyrepr(value: Any) -> str:
    """A Python literal for plain data (``str``, numbers, booleans, ``None``, lists, dicts)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(pyrepr(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{pyrepr(k)}: {pyrepr(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"pyrepr: cannot write a {type(value).__name__} as a Python literal")


FILTERS: dict[str, Callable[..., Any]] = {
    "snake": snake,
    "kebab": kebab,
    "pascal": pascal,
    "camel": camel,
    "local_name": local_name,
    "pyrepr": pyrepr,
}


def make_environment(
    root: Path | None, functions: dict[str, Callable[..., Any]] | None = None
) -> BoundedSandbox:
    """A sandboxed environment; ``root`` is the gpack whose files templates may include,
    ``functions`` are added to the globals (the SPARQL functions of one template).

    Renders through :meth:`~.limits.BoundedSandbox.render_bounded` stay within
    :class:`~.limits.RenderLimits` (output size, value size, time)."""
    from jinja2 import BaseLoader, StrictUndefined, TemplateNotFound, nodes, pass_eval_context
    from jinja2.sandbox import safe_range

    from . import tera_filters, tera_syntax
    from .limits import BoundedSandbox, RenderLimits

    class TemplateEnvironment(BoundedSandbox):
        def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
            return tera_syntax.lift_globals(super()._parse(source, name, filename))

    class GpackLoader(BaseLoader):
        """Loads includes from the gpack only; paths that leave it are not found."""

        def get_source(
            self, environment: Environment, template: str
        ) -> tuple[str, str, Callable[[], bool]]:
            if root is None:
                raise TemplateNotFound(template)
            base = root.resolve()
            candidate = (base / template).resolve()
            if not candidate.is_relative_to(base) or not candidate.is_file():
                raise TemplateNotFound(f"{template} (includes must name a file inside the gpack)")
            text = candidate.read_text(encoding="utf-8")
            return text, str(candidate), lambda: True

    env = TemplateEnvironment(
        RenderLimits.from_environment(),
        loader=GpackLoader(),
        extensions=["jinja2.ext.loopcontrols", tera_syntax.TeraExtension],
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters.update(FILTERS)
    env.filters.update(tera_filters.FILTERS)
    for name, function in tera_filters.EVAL_CONTEXT_FILTERS.items():
        env.filters[name] = pass_eval_context(function)
    env.tests.update(tera_filters.TESTS)
    env.globals.update(tera_filters.functions(safe_range))
    env.globals.update(functions or {})
    return env
