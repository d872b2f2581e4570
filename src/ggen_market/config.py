"""Which registries to use, in which order, and where the cache lives.

Precedence, highest first: ``--registry`` options; else ``GGEN_REGISTRY_URL`` (several URLs
separated by spaces); else the ``[[market.registries]]`` of the project's ``ggen.toml`` and then of
the user's ``~/.config/ggen/config.toml``, followed by the embedded example registry unless a config
says ``use_embedded = false``; with no configuration at all, the embedded registry alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_cleanroom.config_errors.errors import TomlSyntaxError
from pytest_cleanroom.config_errors.suggest import did_you_mean
from pytest_cleanroom.config_errors.toml import load_toml

from .errors import MarketError
from .registry import EMBEDDED

PROJECT_CONFIG = "ggen.toml"
_REGISTRY_KEYS = ("name", "url", "ref", "token_env")
_MARKET_KEYS = ("registries", "use_embedded", "timeout", "require_validated", "trusted_keys")


class ConfigError(MarketError, ValueError):
    """A configuration file with a bad ``[market]`` table."""


@dataclass(frozen=True)
class RegistrySpec:
    """A configured registry: a display ``name`` and the ``url`` given to ``open_registry``."""

    name: str
    url: str
    #: The environment variable holding the upload token of an HTTP registry (publish).
    token_env: str | None = None


@dataclass(frozen=True)
class MarketConfig:
    """Resolved configuration: registries in precedence order, cache directory, timeout."""

    registries: tuple[RegistrySpec, ...]
    cache_dir: Path
    timeout: float
    #: ``require_validated = true``: every installed version needs a passing validation
    #: statement, for exactly its archive, signed by one of ``trusted_keys`` (public key files).
    require_validated: bool = False
    trusted_keys: tuple[Path, ...] = ()


def cache_dir() -> Path:
    """``$GGEN_CACHE_DIR``, else ``$XDG_CACHE_HOME/ggen``, else ``~/.cache/ggen``."""
    explicit = os.environ.get("GGEN_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "ggen"


def user_config_path() -> Path:
    """``$GGEN_CONFIG``, else ``$XDG_CONFIG_HOME/ggen/config.toml``."""
    explicit = os.environ.get("GGEN_CONFIG")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "ggen" / "config.toml"


def embedded_gpacks_dir() -> Path | None:
    """The example gpacks shipped with the package (wheel), or those of a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_embedded" / "example_gpacks", here.parents[1] / "example_gpacks"):
        if candidate.is_dir():
            return candidate
    return None


def _read_market_table(path: Path) -> dict[str, Any]:
    try:
        data = load_toml(path).data
    except FileNotFoundError:
        return {}
    except TomlSyntaxError as exc:
        raise ConfigError(f"{path}: {exc.message}{exc.at}") from None
    market = data.get("market", {})
    if not isinstance(market, dict):
        raise ConfigError(f"{path}: [market] must be a table")
    _known_keys(market, _MARKET_KEYS, f"{path}: [market]")
    return market


def _known_keys(table: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    """:class:`ConfigError` naming the first key of ``table`` not in ``known``, and the fix."""
    for key in table:
        if key not in known:
            raise ConfigError(f"{where} {key}: unknown key{did_you_mean(key, known, aside=True)}")


def _registries_of(path: Path, market: dict[str, Any]) -> list[RegistrySpec]:
    raw = market.get("registries", [])
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: [[market.registries]] must be an array of tables")
    specs = []
    for number, item in enumerate(raw, start=1):
        where = f"{path}: [[market.registries]] #{number}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected a table with url")
        _known_keys(item, _REGISTRY_KEYS, f"{where}:")
        url = item.get("url")
        if not isinstance(url, str) or not url:
            raise ConfigError(f"{where}: url: required (a path, file://, http(s):// or git+URL)")
        ref = item.get("ref")
        if ref is not None:
            if not url.startswith("git+"):
                raise ConfigError(f"{where}: ref: only git registries (git+URL) take a ref")
            url = f"{url.partition('#')[0]}#{ref}"
        if url.startswith(("./", "../")) or url in (".", ".."):
            url = str((path.parent / url).resolve())
        token_env = item.get("token_env")
        if token_env is not None and not (isinstance(token_env, str) and token_env.isidentifier()):
            raise ConfigError(
                f"{where}: token_env: the name of an environment variable (e.g. TEAM_TOKEN),"
                " never the token itself"
            )
        specs.append(RegistrySpec(name=str(item.get("name", url)), url=url, token_env=token_env))
    return specs


def load_config(
    project: Path, cli_registries: tuple[str, ...] = (), timeout: float | None = None
) -> MarketConfig:
    """Resolve the registries for a command run in ``project``."""
    files = [project / PROJECT_CONFIG, user_config_path()]
    tables = [(path, _read_market_table(path)) for path in files]
    configured_timeout = next(
        (t["timeout"] for _, t in tables if isinstance(t.get("timeout"), (int, float))), None
    )
    final_timeout = float(
        timeout or os.environ.get("GGEN_HTTP_TIMEOUT") or configured_timeout or 10.0
    )
    if cli_registries:
        specs = [RegistrySpec(name=url, url=url) for url in cli_registries]
    elif os.environ.get("GGEN_REGISTRY_URL", "").strip():
        specs = [RegistrySpec(name=url, url=url) for url in os.environ["GGEN_REGISTRY_URL"].split()]
    else:
        specs = []
        use_embedded = True
        for path, table in tables:
            specs += _registries_of(path, table)
            if table.get("use_embedded") is False:
                use_embedded = False
        if use_embedded:
            specs.append(RegistrySpec(name="embedded", url=EMBEDDED))
    return MarketConfig(
        registries=tuple(specs),
        cache_dir=cache_dir(),
        timeout=final_timeout,
        require_validated=any(_require_validated(path, table) for path, table in tables),
        trusted_keys=tuple(key for path, table in tables for key in _trusted_keys(path, table)),
    )


def _require_validated(path: Path, table: dict[str, Any]) -> bool:
    value = table.get("require_validated", False)
    if not isinstance(value, bool):
        raise ConfigError(f"{path}: [market] require_validated: expected true or false")
    return value


def _trusted_keys(path: Path, table: dict[str, Any]) -> list[Path]:
    """``trusted_keys``: public key files (PEM), relative to the file that lists them."""
    raw = table.get("trusted_keys", [])
    if not isinstance(raw, list) or not all(isinstance(k, str) and k for k in raw):
        raise ConfigError(
            f"{path}: [market] trusted_keys: expected a list of public key files"
            ' (e.g. ["keys/team.pub"])'
        )
    return [(path.parent / Path(k).expanduser()).resolve() for k in raw]
