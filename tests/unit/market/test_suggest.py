"""Close-match suggestions in ggen market's error messages."""

from __future__ import annotations

from ggen_market.suggest import did_you_mean

# The ids of the example gpacks shipped in the wheel.
EXAMPLE_IDS = [
    "io.ggen.cleanroom.smoke",
    "io.ggen.python.cli-from-ontology",
    "io.ggen.python.project-basics",
]


def test_a_pack_the_request_begins_wins_over_a_similar_spelling() -> None:
    # By difflib ratio project-basics (0.7234) edges out cli-from-ontology (0.72).
    assert did_you_mean("io.ggen.python.cli", EXAMPLE_IDS) == (
        " (did you mean 'io.ggen.python.cli-from-ontology'?)"
    )


def test_among_several_packs_the_request_begins_the_closest_wins() -> None:
    choices = ["io.test.app-extras-and-more", "io.test.app", "io.test.apple"]
    assert did_you_mean("io.test.ap", choices) == " (did you mean 'io.test.app'?)"


def test_a_typo_still_gets_the_close_match() -> None:
    assert did_you_mean("io.ggen.cleanrom.smoke", EXAMPLE_IDS) == (
        " (did you mean 'io.ggen.cleanroom.smoke'?)"
    )


def test_nothing_close_suggests_nothing() -> None:
    assert did_you_mean("zzz", EXAMPLE_IDS) == ""
    assert did_you_mean("", EXAMPLE_IDS) == ""
