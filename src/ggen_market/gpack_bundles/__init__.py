"""Test gpacks as installable fixture bundles.

A test gpack installed with ``ggen market add`` (pinned in ``ggen.lock``) brings its
``*.scenario.toml`` files and pytest fixture modules into the project's pytest run: the sub-plugin
:mod:`ggen_market.gpack_bundles.plugin` finds the packs through the lock, verifies them against
their lock digests, registers their fixture modules as plugins and collects their scenarios. The
``cleanroom`` plugin registers it as its sub-plugin ``cleanroom.gpack_bundles.plugin``, declared in
the entry-point group ``pytest_cleanroom.subplugins``.

Importing this package is cheap; the marketplace's modules are imported only when a
``ggen.lock`` exists.
"""

from __future__ import annotations
