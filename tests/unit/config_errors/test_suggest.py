"""Close-match suggestions: "did you mean" in every package's error messages."""

from __future__ import annotations

from pytest_cleanroom.config_errors.suggest import closest, did_you_mean, typo_of

# The ids of the example gpacks shipped in the wheel.
EXAMPLE_IDS = [
    "io.ggen.cleanroom.smoke",
    "io.ggen.python.cli-from-ontology",
    "io.ggen.python.project-basics",
]


def test_a_pack_the_request_begins_wins_over_a_similar_spelling() -> None:
    # By difflib ratio project-basics (0.7234) edges out cli-from-ontology (0.72).
    assert did_you_mean("io.ggen.python.cli", EXAMPLE_IDS, aside=True) == (
        " (did you mean 'io.ggen.python.cli-from-ontology'?)"
    )


def test_among_several_packs_the_request_begins_the_closest_wins() -> None:
    choices = ["io.test.app-extras-and-more", "io.test.app", "io.test.apple"]
    assert did_you_mean("io.test.ap", choices, aside=True) == " (did you mean 'io.test.app'?)"


def test_a_typo_still_gets_the_close_match() -> None:
    assert did_you_mean("io.ggen.cleanrom.smoke", EXAMPLE_IDS, aside=True) == (
        " (did you mean 'io.ggen.cleanroom.smoke'?)"
    )


def test_nothing_close_suggests_nothing() -> None:
    assert did_you_mean("zzz", EXAMPLE_IDS) == ""
    assert did_you_mean("", EXAMPLE_IDS) == ""


def test_the_clause_form_follows_a_sentence() -> None:
    assert did_you_mean("comand", ["command", "cwd"]) == "; did you mean 'command'?"
    assert closest("comand", ["command", "cwd"]) == "command"
    assert closest("zzz", ["command"]) is None


def test_a_typo_is_a_close_misspelling_and_a_foreign_key_is_not() -> None:
    known = ["command", "description", "depends_on"]
    assert typo_of("comand", known) == "command"
    # Far from every known key: another tool's key, ignored with a warning by the callers.
    assert typo_of("x-turbo-outputs", known) is None
    # A prefix is a suggestion, but not a misspelling: typo_of does not prefer prefixes.
    assert closest("desc", known) == "description"
    assert typo_of("desc", known) is None
