"""Collecting test gpacks' scenario files: ``gpack:id@version/path.scenario.toml::name`` items.

The files are parsed and turned into items by the scenario sub-plugin's own code
(:func:`~pytest_cleanroom.scenarios.files.load_scenario_file`,
:class:`~pytest_cleanroom.scenarios.items.ScenarioItem`); this module only places them under one
collector per pack, marks them ``gpack(id)`` and applies the pack's ``[cleanroom]`` floor.

The collectors are plain :class:`pytest.Collector` nodes, not ``pytest.File``: ``--lf`` skips
files whose path does not appear in a failed node id, and a pack's node ids name the pack, not the
path it is installed at.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

import pytest

from pytest_cleanroom.pytest_plugin.settings import get_settings
from pytest_cleanroom.scenarios.files import ScenarioFileError, ScenarioVariant, load_scenario_file
from pytest_cleanroom.scenarios.items import ScenarioItem

from .bundle import Bundle, GpackRun

if TYPE_CHECKING:
    from pytest_cleanroom.policy import Policy

MARKER = "gpack"


def pack_collectors(session: pytest.Session, run: GpackRun) -> list[GpackCollector]:
    """One collector per pack that ships scenarios."""
    return [GpackCollector.for_bundle(session, b) for b in run.bundles if b.scenarios]


class GpackCollector(pytest.Collector):
    """A test gpack's scenarios; carries the ``gpack(id)`` marker for its items."""

    bundle: Bundle

    @classmethod
    def for_bundle(cls, parent: pytest.Session, bundle: Bundle) -> GpackCollector:
        node = cls.from_parent(parent, name=bundle.nodeid, path=bundle.root, nodeid=bundle.nodeid)
        node.bundle = bundle
        node.add_marker(
            getattr(pytest.mark, MARKER)(bundle.id, id=bundle.id, version=bundle.version)
        )
        node.extra_keyword_matches.add(bundle.id)
        return node

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        return [
            GpackScenarioFile.for_path(self, path.relative_to(self.bundle.root).as_posix())
            for path in self.bundle.scenarios
        ]


class GpackScenarioFile(pytest.Collector):
    """One ``*.scenario.toml`` of a pack; a malformed one is a collection error naming its line."""

    bundle: Bundle

    @classmethod
    def for_path(cls, parent: GpackCollector, relative: str) -> GpackScenarioFile:
        node = cls.from_parent(
            parent,
            name=relative,
            path=parent.bundle.root / relative,
            nodeid=f"{parent.nodeid}/{relative}",
        )
        node.bundle = parent.bundle
        return node

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        try:
            variants = load_scenario_file(self.path)
        except ScenarioFileError as exc:
            raise self.CollectError(f"gpack {self.bundle.label}: {exc}") from None
        run_floor = get_settings(self.config).policy
        # ScenarioItem only needs its parent to be a collector with the file's path.
        parent = cast(Any, self)
        return [
            ScenarioItem.for_variant(parent, with_pack_floor(v, self.bundle, run_floor))
            for v in variants
        ]


def pack_floor(bundle: Bundle) -> Policy:
    """The pack's ``[cleanroom]`` policy level, with its ``timeout`` if that is stricter."""
    from pytest_cleanroom.policy import Policy

    floor = Policy.level(bundle.policy)
    if bundle.policy_fields:  # the seed's keys: tightened_by keeps them from loosening the level
        floor = floor.tightened_by(floor.replace(**bundle.policy_fields))
    if bundle.timeout is not None and (floor.timeout is None or bundle.timeout < floor.timeout):
        floor = floor.replace(timeout=bundle.timeout)
    return floor


def with_pack_floor(variant: ScenarioVariant, bundle: Bundle, run_floor: Policy) -> ScenarioVariant:
    """``variant`` as the pack runs it: its policy tightened by the pack's (never weakened), the
    pack's timeout as an upper bound, the pack's services and env as defaults."""
    from pytest_cleanroom.policy import Policy

    sc = variant.scenario
    # The scenario's own policy, else the run's: the command line stays the floor of both, as the
    # cleanroom fixture applies it to every step.
    base = run_floor if sc.policy is None else Policy.coerce(sc.policy)
    timeout = sc.scenario_timeout
    if bundle.timeout is not None:
        timeout = bundle.timeout if timeout is None else min(timeout, bundle.timeout)
    scenario = dataclasses.replace(
        sc,
        policy=base.tightened_by(pack_floor(bundle)),
        scenario_timeout=timeout,
        services=tuple(dict.fromkeys((*sc.services, *bundle.services))),
        env={**bundle.env, **sc.env},
    )
    return dataclasses.replace(variant, scenario=scenario)
