"""Which optional extra of pytest-cleanroom installs which package: every "pip install" hint.

``pip install pytest-cleanroom`` brings only the base dependencies; code that needs an optional
package names the fix through :func:`install_hint` or :func:`missing_extra`, so the hint cannot
disagree with the packaging (tests/unit/config_errors/test_extras.py checks this table against
pyproject.toml).
"""

from __future__ import annotations

import importlib.util

DISTRIBUTION = "pytest-cleanroom"

#: Top-level import name -> (distribution name, extra in pyproject.toml that installs it).
PROVIDERS: dict[str, tuple[str, str]] = {
    "httpx": ("httpx", "market"),
    "jinja2": ("jinja2", "market"),
    "rdflib": ("rdflib", "market"),
    "yaml": ("pyyaml", "market"),
    "packaging": ("packaging", "market"),
    "semver": ("semver", "market"),
    "psycopg": ("psycopg", "services"),
    "redis": ("redis", "services"),
    "docker": ("docker", "docker"),
    "testcontainers": ("testcontainers", "docker"),
    "syrupy": ("syrupy", "snapshot"),
    "zstandard": ("zstandard", "remote-cache"),
    "pymysql": ("pymysql", "mysql"),
    "django": ("django", "django"),
    "pytest_django": ("pytest-django", "django"),
}
#: Packages an extra brings only as a dependency of one of its own (the docker SDK's requests).
THROUGH: dict[str, tuple[str, str]] = {"requests": ("requests", "docker")}


def install_command(extra: str) -> str:
    """``pip install 'pytest-cleanroom[extra]'``."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def extra_of(module: str) -> str | None:
    """The extra that installs the top-level package of ``module`` (``"yaml.nodes"``), if any."""
    top = module.partition(".")[0]
    provider = PROVIDERS.get(top) or THROUGH.get(top)
    return provider[1] if provider else None


def install_hint(module: str) -> str:
    """``pip install 'pytest-cleanroom[extra]'`` for the package of ``module``.

    :class:`KeyError` for a module no extra installs: a caller asks only about its optional
    packages, and a test keeps the table complete.
    """
    extra = extra_of(module)
    if extra is None:
        raise KeyError(f"no extra of {DISTRIBUTION} installs {module!r}")
    return install_command(extra)


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The fix for ``exc`` when it is a missing package of an extra, else ``None``.

    A package that is installed but fails to import a piece of itself is a broken install, not
    a missing extra: that keeps its traceback (``None`` here).
    """
    top = (exc.name or "").partition(".")[0]
    provider = PROVIDERS.get(top) or THROUGH.get(top)
    if provider is None or _installed(top):
        return None
    distribution, extra = provider
    return (
        f"the {distribution} package is missing; it comes with the [{extra}] extra: "
        f"{install_command(extra)}"
    )
