"""Which optional extra of pytest-cleanroom provides a module: the fix for a missing import.

``pip install pytest-cleanroom`` brings only the base dependencies; a ``ggen`` group whose
extra is missing fails on its first import of that extra's package. :func:`missing_extra`
turns that ModuleNotFoundError into one line naming the package and the ``pip install`` that
brings it, the wording the pytest plugin uses for the same problem.
"""

from __future__ import annotations

import importlib.util

# Top-level import name -> (distribution name, extra in pyproject.toml that installs it).
# tests/unit/cli/test_extras.py checks this table against pyproject.toml.
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
    provider = PROVIDERS.get(top)
    if provider is None or _installed(top):
        return None
    distribution, extra = provider
    return (
        f"the {distribution} package is missing; it comes with the [{extra}] extra: "
        f"pip install 'pytest-cleanroom[{extra}]'"
    )
