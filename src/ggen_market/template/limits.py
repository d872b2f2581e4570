"""Bounds on one template render: output size, size of the values it builds, and time.

A template is code from a gpack: ``{{ 'a' * 10**9 }}``, nested ``range`` loops or
``lipsum(10**6)`` must end in a :class:`~ggen_market.errors.TemplateError`, not in gigabytes or
an endless run. The limits (documented in docs/templates.md) come from the environment:

==============================  ============================================  =========
variable                        what                                          default
==============================  ============================================  =========
``GGEN_TEMPLATE_MAX_OUTPUT``    characters one template may render, and the   16 MiB
                                largest string or list an expression may make
``GGEN_TEMPLATE_TIMEOUT``       seconds one template may take to render       10
``GGEN_SPARQL_TIMEOUT``         seconds one SPARQL query may take             10
``GGEN_SPARQL_MAX_ROWS``        rows one SPARQL query may return              100,000
==============================  ============================================  =========
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment

from pytest_cleanroom import deadline

from ..env_limits import env_number
from ..errors import TemplateError

MAX_OUTPUT = 16 * 1024 * 1024
RENDER_TIMEOUT = 10.0
SPARQL_TIMEOUT = 10.0
SPARQL_MAX_ROWS = 100_000
#: A printf or format width/precision with this many digits or more is refused up front.
_WIDE_FORMAT = re.compile(r"\d{7,}")
_WIDTH_METHODS = {"center", "ljust", "rjust", "zfill", "expandtabs"}
_LIPSUM_MAX_PARAGRAPHS = 100


class RenderLimitError(TemplateError):
    """A template passed its output, value-size or time limit."""


def sparql_limits() -> tuple[float, int]:
    """``(seconds, rows)`` one SPARQL query may take and return."""
    seconds = env_number("GGEN_SPARQL_TIMEOUT", SPARQL_TIMEOUT, TemplateError)
    return seconds, int(env_number("GGEN_SPARQL_MAX_ROWS", SPARQL_MAX_ROWS, TemplateError))


@dataclass(frozen=True)
class RenderLimits:
    """How large and how long one render may get."""

    max_output: int = MAX_OUTPUT
    timeout: float = RENDER_TIMEOUT

    @classmethod
    def from_environment(cls) -> RenderLimits:
        return cls(
            max_output=int(env_number("GGEN_TEMPLATE_MAX_OUTPUT", MAX_OUTPUT, TemplateError)),
            timeout=env_number("GGEN_TEMPLATE_TIMEOUT", RENDER_TIMEOUT, TemplateError),
        )


def _check_format(text: str) -> None:
    if _WIDE_FORMAT.search(text):
        raise RenderLimitError(f"format string {text[:40]!r}: width or precision too large")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus checks before an operation could build a huge value, and a
    deadline looked at on every call a template makes."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, limits: RenderLimits, **options: Any) -> None:
        # Constant folding would evaluate ``'a' * 10**9`` while compiling, past every check.
        super().__init__(optimized=False, **options)
        self.limits = limits
        self.deadline: float | None = None
        self.globals["lipsum"] = self._lipsum(self.globals["lipsum"])
        for name in ("center", "indent", "format", "wordwrap", "truncate"):
            self.filters[name] = self._checked_filter(self.filters[name])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self._check_time()
        if operator == "*":
            self._check_repeat(left, right)
            self._check_repeat(right, left)
        elif operator == "**":
            self._check_power(left, right)
        elif operator == "%" and isinstance(left, str):
            _check_format(left)
        elif operator == "+" and isinstance(left, (str, list)) and isinstance(right, type(left)):
            self._check_size(len(left) + len(right))
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        __self._check_time()
        __self._check_method(__obj, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        """``str.format``/``format_map`` reached as an attribute: check the format string first
        (the sandbox hands templates its own wrapper, which :meth:`call` cannot see through)."""
        owner = getattr(value, "__self__", None)
        if isinstance(owner, str) and getattr(value, "__name__", "") in ("format", "format_map"):
            _check_format(owner)
        return super().wrap_str_format(value)

    def _check_time(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise RenderLimitError(self._timeout_message())

    def _timeout_message(self) -> str:
        return (
            f"rendering took longer than {self.limits.timeout:g} s "
            "(GGEN_TEMPLATE_TIMEOUT raises the limit)"
        )

    def _check_size(self, size: float) -> None:
        if size > self.limits.max_output:
            raise RenderLimitError(
                f"an expression would make a value of {size:.0f} items, over the limit of "
                f"{self.limits.max_output} (GGEN_TEMPLATE_MAX_OUTPUT raises it)"
            )

    def _check_repeat(self, sequence: Any, times: Any) -> None:
        if isinstance(sequence, (str, bytes, list, tuple)) and isinstance(times, int):
            self._check_size(len(sequence) * times)

    def _check_power(self, base: Any, exponent: Any) -> None:
        if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
            digits = exponent * math.log10(abs(base)) if abs(base) > 1 else 0
            if digits > 10_000:
                raise RenderLimitError(f"{base} ** {exponent} would have {digits:.0f} digits")

    def _check_method(self, obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        owner = getattr(obj, "__self__", None)
        name = getattr(obj, "__name__", "")
        if not isinstance(owner, str):
            return
        numbers = [a for a in (*args, *kwargs.values()) if isinstance(a, int)]
        if name in _WIDTH_METHODS and numbers:
            self._check_size(max(numbers) * (8 if name == "expandtabs" else 1) + len(owner))
        elif name == "replace" and len(args) >= 2 and all(isinstance(a, str) for a in args[:2]):
            count = owner.count(args[0]) if args[0] else len(owner) + 1
            self._check_size(len(owner) + count * max(0, len(args[1]) - len(args[0])))

    def _checked_filter(self, function: Any) -> Any:
        """A width-taking filter whose widths and format strings are checked first (filters are
        called directly, not through :meth:`call`)."""

        passes = hasattr(function, "jinja_pass_arg")

        def checked(*args: Any, **kwargs: Any) -> Any:
            self._check_time()
            value, rest = args[int(passes)], (*args[int(passes) + 1 :], *kwargs.values())
            numbers = [a for a in rest if isinstance(a, int)]
            if numbers:
                self._check_size(max(numbers) + (len(value) if isinstance(value, str) else 0))
            if isinstance(value, str) and function.__name__ == "do_format":
                _check_format(value)
            return function(*args, **kwargs)

        for attribute in ("jinja_pass_arg",):  # keep how jinja passes the context/environment
            if hasattr(function, attribute):
                setattr(checked, attribute, getattr(function, attribute))
        return checked

    def _lipsum(self, lipsum: Any) -> Any:
        def bounded(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> Any:
            if not (0 <= n <= _LIPSUM_MAX_PARAGRAPHS and 0 <= min <= max <= 1000):
                raise RenderLimitError(
                    f"lipsum(n={n}, min={min}, max={max}): at most {_LIPSUM_MAX_PARAGRAPHS} "
                    "paragraphs of at most 1000 words"
                )
            return lipsum(n=n, html=html, min=min, max=max)

        return bounded

    def render_bounded(self, template: Any, context: dict[str, Any]) -> str:
        """``template.render(context)`` within the output and time limits."""
        parts: list[str] = []
        size = 0
        with self._deadline():
            for chunk in template.generate(context):
                size += len(chunk)
                if size > self.limits.max_output:
                    raise RenderLimitError(
                        f"output larger than {self.limits.max_output} characters "
                        "(GGEN_TEMPLATE_MAX_OUTPUT raises the limit)"
                    )
                parts.append(chunk)
                self._check_time()
        return "".join(parts)

    @contextlib.contextmanager
    def _deadline(self) -> Iterator[None]:
        self.deadline = time.monotonic() + self.limits.timeout
        try:
            with time_limit(self.limits.timeout, self._timeout_message):
                yield
        finally:
            self.deadline = None


@contextlib.contextmanager
def time_limit(seconds: float, message: Callable[[], str]) -> Iterator[None]:
    """In the main thread, interrupt the block after ``seconds`` with
    ``RenderLimitError(message())``, wherever it is (a loop that calls nothing, a query engine's
    own loop); elsewhere, or when another timer runs (pytest-timeout), do nothing: callers also
    check a deadline of their own between steps (see :mod:`pytest_cleanroom.deadline`)."""
    try:
        with deadline.time_limit(seconds):
            yield
    except deadline.DeadlineExceededError:
        raise RenderLimitError(message()) from None
