"""ggen_market: gpack registries, search, installs with integrity, lockfile, templates.

Importing this package is cheap; the modules load when used::

    from ggen_market.install import Project
    from ggen_market.config import load_config

    project = Project(Path("."), load_config(Path(".")))
    project.add(["io.ggen.python.cli-from-ontology@^1.0"])
"""

from __future__ import annotations

from pytest_cleanroom import __version__

__all__ = ["__version__"]
