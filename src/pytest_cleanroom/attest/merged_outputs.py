"""The merged JSON report, JUnit XML and durations of a sharded run, from the shards' files.

A shard that wrote ``--cleanroom-report=DIR/report.json`` and ``--junitxml=DIR/junit.xml`` into
its attestation directory DIR gets them merged: every shard's commands in one report (each run
record kept under ``run.shards``), every shard's ``<testsuite>`` in one ``<testsuites>``. Each
shard writes its tests' durations there as ``durations.json``; together they are the next run's
durations file.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..safe_write import write_output
from .shards import ShardFacts

REPORT_NAME = "report.json"
JUNIT_NAME = "junit.xml"


def merge_reports(shards: Sequence[ShardFacts], out: Path) -> list[str]:
    """Write ``out/report.json`` when every shard has one; the names written."""
    paths = [s.directory / REPORT_NAME for s in shards]
    if not all(p.is_file() for p in paths):
        return []
    documents = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    commands = sorted(
        (c for d in documents for c in d.get("commands", [])), key=lambda c: c.get("nodeid", "")
    )
    summaries = [d.get("summary", {}) for d in documents]
    merged: dict[str, Any] = {
        "version": documents[0].get("version", 1),
        "run": {"shards": [d.get("run", {}) for d in documents]},
        "attestations": str(out),
        "summary": {
            "commands": len(commands),
            "failed_commands": sum(s.get("failed_commands", 0) for s in summaries),
            "tests": len({c.get("nodeid") for c in commands}),
            "total_duration": round(sum(s.get("total_duration", 0.0) for s in summaries), 6),
            "total_cpu_time": round(sum(s.get("total_cpu_time", 0.0) for s in summaries), 6),
            "max_peak_memory": max((s.get("max_peak_memory", 0) for s in summaries), default=0),
        },
        "commands": commands,
    }
    write_output(out / REPORT_NAME, json.dumps(merged, indent=2) + "\n")
    return [REPORT_NAME]


def merge_junit(shards: Sequence[ShardFacts], out: Path) -> list[str]:
    """Write ``out/junit.xml`` when every shard has one; the names written."""
    paths = [s.directory / JUNIT_NAME for s in shards]
    if not all(p.is_file() for p in paths):
        return []
    root = ET.Element("testsuites", {"name": "pytest (merged shards)"})
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    time = 0.0
    for shard, path in zip(shards, paths, strict=True):
        parsed = ET.parse(path).getroot()
        suites = [parsed] if parsed.tag == "testsuite" else list(parsed.iter("testsuite"))
        for suite in suites:
            suite.set("name", f"{suite.get('name', 'pytest')} (shard {shard.index}/{shard.total})")
            for name in totals:
                totals[name] += int(suite.get(name, "0"))
            time += float(suite.get("time", "0"))
            root.append(suite)
    for name, value in totals.items():
        root.set(name, str(value))
    root.set("time", f"{time:.3f}")
    write_output(out / JUNIT_NAME, ET.tostring(root, encoding="utf-8", xml_declaration=True))
    return [JUNIT_NAME]


def merge_durations(shards: Sequence[ShardFacts], out: Path) -> list[str]:
    """Write ``out/durations.json``, every shard's measured durations together."""
    from ..shard.durations import SHARD_FILE, DurationsFileError, read, write

    combined: dict[str, float] = {}
    for shard in shards:
        path = shard.directory / SHARD_FILE
        if not path.is_file():
            return []
        try:
            combined.update(read(path))
        except DurationsFileError:
            return []
    write(out / SHARD_FILE, combined)
    return [SHARD_FILE]
