"""Test gpacks as installable fixture bundles.

A test gpack installed with ``ggen market add`` (pinned in ``ggen.lock``) brings its
``*.scenario.toml`` files and pytest fixture modules into the project's pytest run: the sub-plugin
:mod:`pytest_cleanroom.gpack_bundles.plugin` finds the packs through the lock, verifies them against
their lock digests, registers their fixture modules as plugins and collects their scenarios.

Importing this package is cheap; ``ggen_market`` is imported only when a ``ggen.lock`` exists.
"""

from __future__ import annotations
