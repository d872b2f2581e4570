"""Errors raised by ggen_market on purpose; each message names the file, field or fix."""

from __future__ import annotations


class MarketError(Exception):
    """Base class of every error ggen_market raises on purpose."""


class ManifestError(MarketError, ValueError):
    """A ``gpack.toml`` (or a scenario file) is malformed: the message names file and key."""


class VersionError(MarketError, ValueError):
    """A version or a version range that cannot be parsed."""


class RegistryIndexError(MarketError, ValueError):
    """A registry index that is malformed, truncated or inconsistent."""


class RegistryError(MarketError):
    """A registry that cannot be reached, read or cloned."""


class UnreadableRegistryError(RegistryError):
    """A registry ranked above the one serving an id could not be read: resolution stops."""


class IntegrityError(MarketError):
    """A digest that does not match: the archive or installed tree was changed."""


class ArchiveError(MarketError):
    """An archive that is unsafe to extract (path escape, link, device, size bomb) or unreadable."""


class ResolutionError(MarketError):
    """Dependencies that cannot be satisfied: unknown id, conflict, cycle."""


class LockfileError(MarketError):
    """A ``ggen.lock`` that cannot be read or does not match what is installed."""


class InstallError(MarketError):
    """An install, update or removal that could not be completed (nothing was changed)."""


class TemplateError(MarketError):
    """A template that cannot be parsed or rendered, or whose output is refused."""


class SandboxViolationError(TemplateError):
    """A template tried something the sandbox forbids (unsafe attribute, file access)."""


class OutputEscapeError(TemplateError):
    """A template's output path resolves outside the output directory."""


class RdfError(TemplateError):
    """An RDF graph that does not parse, or a SPARQL query that fails."""
