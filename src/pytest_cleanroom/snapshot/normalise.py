"""Normalisers: rewrite what varies from run to run (temporary paths, durations, timestamps, the
seed) into stable placeholders, so that a snapshot taken on one machine matches on another.

Pure standard library; usable without syrupy or pytest::

    norm = Normaliser.for_run(workspace="/tmp/pytest-of-me/pytest-3/test_a0/workspace", seed=4242)
    norm("wrote /tmp/pytest-of-me/pytest-3/test_a0/workspace/out.txt in 0.25s (seed 4242)")
    # -> 'wrote <workspace>/out.txt in <duration> (seed <seed>)'
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

Rule = tuple["re.Pattern[str]", str | Callable[["re.Match[str]"], str]]

WORKSPACE = "<workspace>"
TMP_PATH = "<tmp_path>"
BASETEMP = "<basetemp>"
TMP = "<tmp>"
DURATION = "<duration>"
TIMESTAMP = "<timestamp>"
SEED = "<seed>"

# A number followed by a unit of time: 12ms, 0.25s, 1.5 seconds, 300 µs.
_DURATION = re.compile(
    r"(?<![\w.])\d+(?:\.\d+)?\s?(?:ns|µs|us|ms|s|sec|secs|seconds?|minutes?|min)(?![\w])"
)
# ISO 8601 date-times, with optional fraction and zone.
_TIMESTAMP = re.compile(
    r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?(?![\w])"
)


def _tmp_roots() -> list[str]:
    roots = {tempfile.gettempdir(), "/tmp", "/var/tmp"}
    return sorted({r.rstrip("/") for r in roots if r}, key=len, reverse=True)


def _generic_tmp_rules() -> list[Rule]:
    """pytest's base temp directories and ``mkdtemp`` names under the system temp roots."""
    rules: list[Rule] = []
    for root in _tmp_roots():
        quoted = re.escape(root)
        rules.append((re.compile(quoted + r"/pytest-of-[^/\s]+/pytest-(?:\d+|current)"), BASETEMP))
        rules.append((re.compile(quoted + r"/tmp[a-z0-9_]{8}(?![\w])"), TMP))
    return rules


@dataclass(frozen=True)
class Normaliser:
    """Rewrite rules applied to text: literal paths first (longest first, so that a workspace
    inside ``tmp_path`` becomes ``<workspace>``), then patterns in the order they were added.
    Build with :meth:`for_run`; :meth:`with_path`, :meth:`with_value` and :meth:`with_pattern`
    each return an extended copy."""

    paths: tuple[tuple[str, str], ...] = ()
    rules: tuple[Rule, ...] = ()
    _path_rules: tuple[Rule, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ordered = sorted(self.paths, key=lambda p: len(p[0]), reverse=True)
        # A path matches only as a whole: "/x/ws" is not a prefix of "/x/ws2".
        compiled = tuple((re.compile(re.escape(p) + r"(?![\w.\-])"), h) for p, h in ordered)
        object.__setattr__(self, "_path_rules", compiled)

    def __call__(self, text: str) -> str:
        for pattern, replacement in (*self._path_rules, *self.rules):
            text = pattern.sub(replacement, text)
        return text

    def normalise_bytes(self, data: bytes) -> bytes:
        """Normalise UTF-8 ``data``; bytes that are not UTF-8 are returned unchanged."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return data
        return self(text).encode("utf-8")

    @classmethod
    def for_run(
        cls,
        *,
        workspace: str | os.PathLike[str] | None = None,
        tmp_path: str | os.PathLike[str] | None = None,
        basetemp: str | os.PathLike[str] | None = None,
        seed: int | None = None,
        durations: bool = True,
        timestamps: bool = True,
        temp_paths: bool = True,
        extra: Iterable[tuple[str, str]] = (),
    ) -> Normaliser:
        """The usual rules for a test run.

        Paths are replaced longest first (``<workspace>``, ``<tmp_path>``, ``<basetemp>``, then
        any other pytest or ``mkdtemp`` temporary directory as ``<tmp>``); then durations
        (``0.25s`` -> ``<duration>``), ISO timestamps and the seed. A seed of five digits or
        more is replaced wherever it stands alone; a shorter one only after ``seed``/``SEED``
        so that small numbers elsewhere survive. ``extra`` holds (regex, replacement) pairs
        applied last.
        """
        norm = cls()
        named = [(workspace, WORKSPACE), (tmp_path, TMP_PATH), (basetemp, BASETEMP)]
        for path, placeholder in named:
            if path is not None:
                norm = norm.with_path(path, placeholder)
        if temp_paths:
            norm = replace(norm, rules=(*norm.rules, *_generic_tmp_rules()))
        if durations:
            norm = norm.with_pattern(_DURATION, DURATION)
        if timestamps:
            norm = norm.with_pattern(_TIMESTAMP, TIMESTAMP)
        if seed is not None:
            norm = norm.with_seed(seed)
        for pattern, replacement in extra:
            norm = norm.with_pattern(pattern, replacement)
        return norm

    def with_path(self, path: str | os.PathLike[str], placeholder: str) -> Normaliser:
        """Replace ``path`` (as given, and resolved) wherever it appears as a whole path."""
        forms = {os.fspath(path).rstrip("/")}
        with contextlib.suppress(OSError):
            forms.add(str(Path(path).resolve()).rstrip("/"))
        added = tuple((f, placeholder) for f in sorted(forms) if f)
        return replace(self, paths=(*self.paths, *added))

    def with_value(self, value: str, placeholder: str) -> Normaliser:
        """Replace every occurrence of the literal ``value``."""
        return self.with_pattern(re.escape(value), placeholder)

    def with_pattern(
        self,
        pattern: str | re.Pattern[str],
        replacement: str | Callable[[re.Match[str]], str],
    ) -> Normaliser:
        """Replace matches of ``pattern`` (``re.sub`` semantics, so groups may be used)."""
        compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
        return replace(self, rules=(*self.rules, (compiled, replacement)))

    def with_seed(self, seed: int) -> Normaliser:
        """Replace the run's seed (see :meth:`for_run` for when a bare number counts)."""
        digits = str(int(seed))
        if len(digits) >= 5:
            return self.with_pattern(rf"(?<![\w.]){digits}(?![\w.])", SEED)
        return self.with_pattern(rf"(?i)(seed\W{{0,3}}){digits}(?!\w)", rf"\g<1>{SEED}")
