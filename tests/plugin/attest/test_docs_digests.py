"""The policy digests shown in the docs' output samples are the ones the tools print now: a
reader compares them with their own report or envelope."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_cleanroom.policy import Policy

DOCS = Path(__file__).resolve().parents[3] / "docs"
PAGES = ["reports.md", "attestations.md", "scenarios.md", "snapshots.md"]

# A policy digest next to its policy's name, as the report and the envelopes write it.
_SHOWN = [
    re.compile(r'"policy": "(\w+)",\s*"policy_digest": "sha256:([0-9a-f]+)'),
    re.compile(r'"policy": \{"name": "(\w+)", "digest": "sha256:([0-9a-f]+)'),
    re.compile(r'"policy": "(\w+)", "policyDigest": "sha256:([0-9a-f]+)'),
]


def shown_digests() -> list[tuple[str, str, str]]:
    found = []
    for page in PAGES:
        text = (DOCS / page).read_text()
        for pattern in _SHOWN:
            found += [(page, m.group(1), m.group(2)) for m in pattern.finditer(text)]
    return found


def test_the_docs_show_policy_digests() -> None:
    pages = {page for page, _, _ in shown_digests()}
    assert {"reports.md", "attestations.md"} <= pages  # the patterns still find the samples


@pytest.mark.parametrize(("page", "policy", "shown"), shown_digests())
def test_policy_digest_is_current(page: str, policy: str, shown: str) -> None:
    current = Policy.level(policy).digest()
    assert len(shown) >= 8, f"{page}: show at least 8 hex digits of {policy}'s digest"
    assert current.startswith(f"sha256:{shown}"), f"{page}: {policy} is {current} now"
