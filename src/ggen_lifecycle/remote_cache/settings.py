"""Where the remote cache is and how to use it: ``[cache.remote]`` merged with turbo's variables.

The environment wins over ``make.toml`` (as with turbo), so CI can point a project at its
server, or make pull requests read-only, without editing the file. The token and the signature
key are read from the environment only: secrets do not belong in a committed file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ConfigError
from ..model import RemoteCacheSpec

MODES = ("read-write", "read-only", "off")
#: The variables read, turbo's names first; ``GGEN_REMOTE_CACHE`` sets the mode.
VARIABLES = (
    "TURBO_API",
    "TURBO_TOKEN",
    "TURBO_TEAM",
    "TURBO_TEAMID",
    "TURBO_REMOTE_CACHE_SIGNATURE_KEY",
    "TURBO_REMOTE_CACHE_TIMEOUT",
    "TURBO_REMOTE_CACHE_READ_ONLY",
    "GGEN_REMOTE_CACHE",
)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class RemoteSettings:
    """A usable remote cache: server, credentials, mode, signing key and time limit."""

    url: str
    token: str | None
    team: str | None
    team_id: str | None
    mode: str
    signature_key: bytes | None
    timeout: float

    @property
    def writable(self) -> bool:
        return self.mode == "read-write"

    @property
    def signed_team(self) -> str:
        """The team the signature binds an artifact to: the team id, as turbo signs (a slug
        alone binds none)."""
        return self.team_id or ""


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"environment variable {name}={env[name]!r} is not one of 1/true or 0/false")


def _mode(spec: RemoteCacheSpec, env: Mapping[str, str]) -> str:
    mode = env.get("GGEN_REMOTE_CACHE", "").strip() or spec.mode
    if mode not in MODES:
        raise ConfigError(
            f"environment variable GGEN_REMOTE_CACHE={mode!r} is not one of {', '.join(MODES)}"
        )
    if mode == "read-write" and _flag(env, "TURBO_REMOTE_CACHE_READ_ONLY"):
        return "read-only"
    return mode


def _timeout(spec: RemoteCacheSpec, env: Mapping[str, str]) -> float:
    raw = env.get("TURBO_REMOTE_CACHE_TIMEOUT", "").strip()
    if not raw:
        return spec.timeout
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 600:
        raise ConfigError(
            f"environment variable TURBO_REMOTE_CACHE_TIMEOUT={raw!r} is not a number of"
            " seconds between 0 and 600"
        )
    return value


def resolve(
    spec: RemoteCacheSpec, env: Mapping[str, str]
) -> tuple[RemoteSettings | None, str | None]:
    """The remote cache to use (``None`` for none) and a warning when one was asked for but is
    not used; :class:`ConfigError` for a malformed variable."""
    url = env.get("TURBO_API", "").strip() or spec.url
    mode = _mode(spec, env)
    timeout = _timeout(spec, env)
    if not url or mode == "off":
        return None, None
    if not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"remote cache URL {url!r} (TURBO_API or [cache.remote] url) is not http(s)"
        )
    key = env.get("TURBO_REMOTE_CACHE_SIGNATURE_KEY", "")
    if spec.signature and not key:
        return None, (
            "remote cache not used: [cache.remote] signature = true but"
            " TURBO_REMOTE_CACHE_SIGNATURE_KEY is not set (set it to the team's shared key)"
        )
    settings = RemoteSettings(
        url=url.rstrip("/"),
        token=env.get("TURBO_TOKEN") or None,
        team=env.get("TURBO_TEAM", "").strip() or spec.team,
        team_id=env.get("TURBO_TEAMID", "").strip() or spec.team_id,
        mode=mode,
        signature_key=key.encode() if key else None,
        timeout=timeout,
    )
    return settings, None
