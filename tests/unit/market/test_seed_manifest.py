"""``[cleanroom]`` in the seed's form maps onto the policy, and only ever tightens it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ggen_market.errors import ManifestError
from ggen_market.gpack_bundles.bundle import Bundle
from ggen_market.gpack_bundles.collect import pack_floor
from ggen_market.manifest import Manifest, load_manifest
from ggen_market.testpack import check_test_sections
from pytest_cleanroom.policy import DEFAULT_HIDDEN, MiB, Policy

HEAD = '[gpack]\nid = "io.test.seed"\nname = "seed"\nversion = "1.0.0"\n\n'
SEED = """\
[cleanroom]
security_level = "Medium"
enable_network_isolation = true
enable_filesystem_isolation = true
max_memory_mb = 1024
max_cpu_percent = 80.0

[scenarios]
integration = "scenarios/integration_tests.yaml"
"""
YAML = "steps:\n  - name: a\n    run: 'true'\n"


def pack(tmp_path: Path, body: str, *, yaml: bool = True) -> Path:
    (tmp_path / "gpack.toml").write_text(HEAD + body)
    if yaml:
        (tmp_path / "scenarios").mkdir()
        (tmp_path / "scenarios" / "integration_tests.yaml").write_text(YAML)
    return tmp_path


def floor_of(manifest: Manifest) -> Policy:
    cleanroom = manifest.cleanroom
    assert cleanroom is not None
    bundle = Bundle(id="io.test.seed", version="1.0.0", root=Path("."), policy=cleanroom.level,
                    policy_fields=cleanroom.policy_changes())  # fmt: skip
    return pack_floor(bundle)


def test_the_seed_manifest_is_accepted_and_mapped(tmp_path: Path) -> None:
    root = pack(tmp_path, SEED)
    manifest = load_manifest(root)
    assert manifest.cleanroom is not None
    assert manifest.cleanroom.level == "standard"
    assert manifest.cleanroom.max_cpu_percent == 80.0
    assert check_test_sections(root, manifest) == [root / "scenarios/integration_tests.yaml"]
    floor = floor_of(manifest)
    assert floor.network == "isolated"
    assert floor.memory_limit == 1024 * MiB
    assert floor.cpu_quota == 0.8  # max_cpu_percent = 80.0: 0.8 of one CPU, in the digest too
    assert floor.digest() != floor.replace(cpu_quota=None).digest()
    assert set(DEFAULT_HIDDEN) <= set(floor.hidden_paths)
    assert floor.read_only_root
    assert floor.private_tmp
    assert floor.is_at_least_as_strict_as(Policy.level("standard"))


@pytest.mark.parametrize(
    ("name", "level"),
    [("Low", "permissive"), ("Medium", "standard"), ("high", "strict"), ("MAXIMUM", "locked"),
     ("Standard", "standard"), ("Locked", "locked")],
)  # fmt: skip
def test_security_levels_map_to_named_levels(tmp_path: Path, name: str, level: str) -> None:
    manifest = load_manifest(
        pack(tmp_path, f'[cleanroom]\nsecurity_level = "{name}"\n', yaml=False)
    )
    assert manifest.cleanroom is not None
    assert manifest.cleanroom.level == level


def test_a_larger_memory_limit_does_not_loosen_the_level(tmp_path: Path) -> None:
    body = '[cleanroom]\nsecurity_level = "High"\nmax_memory_mb = 65536\n'
    floor = floor_of(load_manifest(pack(tmp_path, body, yaml=False)))
    assert floor.memory_limit == Policy.level("strict").memory_limit


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('security_level = "Hgh"', "'Hgh' is not a security level (did you mean 'High'?)"),
        ('security_level = "Low"\npolicy = "strict"', "means policy 'permissive', but policy is"),
        (
            'security_level = "High"\nenable_network_isolation = false',
            "would loosen level 'strict'",
        ),
        ("enable_filesystem_isolation = false", "would loosen level 'standard'"),
        ("max_cpu_percent = 150", "max_cpu_percent"),
        ("max_memory_mb = 0", "max_memory_mb"),
    ],
)
def test_contradictions_and_bad_values_are_refused(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(pack(tmp_path, f"[cleanroom]\n{body}\n", yaml=False))
    assert message in str(info.value)
    assert str(tmp_path / "gpack.toml") in str(info.value)


def test_a_named_scenario_file_must_exist(tmp_path: Path) -> None:
    root = pack(tmp_path, '[scenarios]\nsmoke = "scenarios/smoke.yaml"\n', yaml=False)
    with pytest.raises(ManifestError, match=r"\[scenarios\] smoke: no scenario file"):
        check_test_sections(root, load_manifest(root))
    with pytest.raises(ManifestError, match="a named scenario file is a path"):
        load_manifest(pack(tmp_path, "[scenarios]\nsmoke = 3\n", yaml=False))
