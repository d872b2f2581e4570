"""Semantic versions and npm/cargo-style version ranges.

Versions follow semver 2.0 (``semver`` implements parsing and precedence). Ranges are written
as users know them from npm and cargo and are translated into sets of comparators:

* ``^1.2.3`` → ``>=1.2.3 <2.0.0``; ``^0.2.3`` → ``>=0.2.3 <0.3.0``; ``^0.0.3`` → ``>=0.0.3 <0.0.4``
* ``~1.2.3`` → ``>=1.2.3 <1.3.0``; ``~1`` → ``>=1.0.0 <2.0.0``
* ``1.2.x``, ``1.*``, ``1.2`` (partial) → the versions with that prefix; ``*`` or ``""`` → any
* ``1.2.3`` (complete, bare) or ``=1.2.3`` → exactly that version
* ``>=1.0``, ``>1.2``, ``<2``, ``<=1.4`` with missing parts filled as npm does
* ``1.2.3 - 2.3.4`` (inclusive); comparators joined by ``,`` or spaces (AND) and ``||`` (OR)

Like npm, a pre-release (``1.3.0-rc.1``) satisfies a range only when one comparator of the same
alternative names a pre-release of the same ``major.minor.patch``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import semver

from .errors import VersionError

Version = semver.Version

_PARTIAL = re.compile(
    r"^v?(?P<major>\d+|[xX*])(?:\.(?P<minor>\d+|[xX*]))?(?:\.(?P<patch>\d+|[xX*]))?"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+(?P<build>[0-9A-Za-z.-]+))?$"
)
_COMPARATOR = re.compile(r"^(?P<op>>=|<=|==|!=|>|<|=|\^|~)?\s*(?P<ver>\S*)$")
_WILD = {"x", "X", "*"}

_OPS: dict[str, Callable[[Version, Version], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
    "!=": operator.ne,
}


def parse_version(text: str, *, what: str = "version") -> Version:
    """Parse a complete semver version (``1.2.3``, ``1.0.0-rc.1``); :class:`VersionError` if not."""
    if not isinstance(text, str):
        raise VersionError(f"{what} must be a string like '1.2.3', got {text!r}")
    try:
        return Version.parse(text.strip())
    except ValueError:
        raise VersionError(
            f"{what} {text!r} is not a semantic version (expected MAJOR.MINOR.PATCH, e.g. '1.2.3')"
        ) from None


def is_version(text: str) -> bool:
    """Whether ``text`` is a complete semver version."""
    return isinstance(text, str) and Version.is_valid(text)


@dataclass(frozen=True)
class Comparator:
    """One ``OP VERSION`` test."""

    op: str
    version: Version

    def __call__(self, candidate: Version) -> bool:
        return _OPS[self.op](candidate, self.version)

    def __str__(self) -> str:
        return f"{self.op}{self.version}"


@dataclass(frozen=True)
class VersionRange:
    """A parsed range: an OR of AND-ed comparator sets. ``text`` keeps what the user wrote."""

    text: str
    alternatives: tuple[tuple[Comparator, ...], ...]

    def allows(self, version: Version | str) -> bool:
        """Whether ``version`` satisfies the range (pre-releases as npm treats them)."""
        candidate = parse_version(version) if isinstance(version, str) else version
        return any(_set_allows(alt, candidate) for alt in self.alternatives)

    def best(self, versions: Iterable[Version | str]) -> Version | None:
        """The highest version in ``versions`` the range allows, or ``None``."""
        allowed = [v for v in map(_as_version, versions) if self.allows(v)]
        return max(allowed) if allowed else None

    def __str__(self) -> str:
        return self.text

    def normalized(self) -> str:
        """The comparator form, e.g. ``>=1.2.0 <2.0.0``."""
        return " || ".join(" ".join(map(str, alt)) or "*" for alt in self.alternatives)


def _as_version(value: Version | str) -> Version:
    return value if isinstance(value, Version) else parse_version(value)


def _set_allows(comparators: tuple[Comparator, ...], candidate: Version) -> bool:
    if not all(c(candidate) for c in comparators):
        return False
    if candidate.prerelease is None:
        return True
    core = (candidate.major, candidate.minor, candidate.patch)
    return any(
        c.version.prerelease is not None
        and (c.version.major, c.version.minor, c.version.patch) == core
        for c in comparators
    )


_RANGE_CACHE: dict[str, VersionRange] = {}


def parse_range(text: str, *, what: str = "version range") -> VersionRange:
    """Parse an npm/cargo-style range, or raise :class:`VersionError` naming ``what``."""
    if not isinstance(text, str):
        raise VersionError(f"{what} must be a string like '^1.2', got {text!r}")
    cached = _RANGE_CACHE.get(text)
    if cached is not None:
        return cached
    try:
        alternatives = tuple(_parse_set(part.strip()) for part in text.split("||"))
    except VersionError as exc:
        raise VersionError(f"{what} {text!r}: {exc}") from None
    result = VersionRange(text=text, alternatives=alternatives)
    _RANGE_CACHE[text] = result
    return result


def _parse_set(text: str) -> tuple[Comparator, ...]:
    if text in ("", "*", "x", "X"):
        return ()
    hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", text)
    if hyphen:
        low = _partial(hyphen.group(1))
        high = _partial(hyphen.group(2))
        return (*_expand(">=", low), *_expand("<=", high))
    # Normalise "> = 1.0" / ">= 1.0" so operators stick to their version, then split on , or space.
    joined = re.sub(r"(>=|<=|==|!=|>|<|=|\^|~)\s+", r"\1", text)
    tokens = [t for t in re.split(r"[,\s]+", joined) if t]
    comparators: list[Comparator] = []
    for token in tokens:
        match = _COMPARATOR.match(token)
        if match is None or not match.group("ver"):
            raise VersionError(f"cannot read {token!r} (write e.g. '^1.2', '~1.2.3', '>=1.0,<2.0')")
        comparators.extend(_expand(match.group("op") or "", _partial(match.group("ver"))))
    return tuple(comparators)


@dataclass(frozen=True)
class _Partial:
    major: int | None
    minor: int | None
    patch: int | None
    pre: str | None
    build: str | None

    def full(self) -> Version:
        return Version(
            self.major or 0, self.minor or 0, self.patch or 0, prerelease=self.pre, build=self.build
        )


def _partial(text: str) -> _Partial:
    match = _PARTIAL.match(text)
    if match is None:
        raise VersionError(f"{text!r} is not a version")
    parts: list[int | None] = []
    seen_wild = False
    for key in ("major", "minor", "patch"):
        raw = match.group(key)
        if raw is None or raw in _WILD:
            seen_wild = True
            parts.append(None)
        elif seen_wild:
            raise VersionError(f"{text!r}: a number cannot follow a wildcard")
        else:
            parts.append(int(raw))
    pre, build = match.group("pre"), match.group("build")
    if (pre or build) and parts[2] is None:
        raise VersionError(f"{text!r}: a pre-release needs a complete MAJOR.MINOR.PATCH")
    return _Partial(parts[0], parts[1], parts[2], pre, build)


def _v(major: int, minor: int = 0, patch: int = 0, pre: str | None = None) -> Version:
    return Version(major, minor, patch, prerelease=pre)


def _expand(op: str, p: _Partial) -> tuple[Comparator, ...]:
    """Translate one operator applied to a (possibly partial) version into plain comparators."""
    if p.major is None:
        return () if op not in ("<", ">", "!=") else (Comparator("<", _v(0, 0, 0, "0")),)
    complete = p.patch is not None
    if op == "^":
        low = p.full()
        if p.major > 0 or p.minor is None:
            high = _v(p.major + 1, pre="0")
        elif p.minor > 0 or p.patch is None:
            high = _v(0, p.minor + 1, pre="0")
        else:
            high = _v(0, 0, p.patch + 1, pre="0")
        return Comparator(">=", low), Comparator("<", high)
    if op == "~":
        low = p.full()
        high = _v(p.major + 1, pre="0") if p.minor is None else _v(p.major, p.minor + 1, pre="0")
        return Comparator(">=", low), Comparator("<", high)
    if complete:
        return (Comparator({"": "=", "==": "="}.get(op, op), p.full()),)
    # A partial version: it stands for the whole block of versions with that prefix.
    low = p.full()
    high = _v(p.major + 1, pre="0") if p.minor is None else _v(p.major, p.minor + 1, pre="0")
    if op in ("", "=", "=="):
        return Comparator(">=", low), Comparator("<", high)
    if op == ">=":
        return (Comparator(">=", low),)
    if op == ">":
        return (Comparator(">=", _v(high.major, high.minor, high.patch)),)
    if op == "<":
        return (Comparator("<", _v(low.major, low.minor, low.patch, pre="0")),)
    if op == "<=":
        return (Comparator("<", high),)
    raise VersionError(f"'!=' needs a complete version, got {op}{_describe(p)}")


def _describe(p: _Partial) -> str:
    return ".".join("x" if n is None else str(n) for n in (p.major, p.minor, p.patch))
