"""Helpers that make error messages point at the fix: close-match suggestions."""

from __future__ import annotations

from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a choice is close to ``word``, else an empty string.

    A choice that starts with ``word`` wins over one that is merely similar: a shortened id
    (``io.ggen.python.cli``) means the pack it begins, not a sibling with a similar spelling.
    """
    import difflib  # only on the error path

    candidates = list(choices)
    extending = [choice for choice in candidates if word and choice.startswith(word)]
    if extending:
        candidates, cutoff = extending, 0.0
    else:
        cutoff = 0.6
    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=cutoff)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


#: How close an unknown key must be to a known one to be taken for its misspelling (an error);
#: a farther one is a key of another tool (ggen ignores unknown keys), ignored with a warning.
TYPO_CUTOFF = 0.8


def typo_of(word: str, choices: Iterable[str]) -> str | None:
    """The choice ``word`` is probably a misspelling of, if any (see :data:`TYPO_CUTOFF`)."""
    import difflib

    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=TYPO_CUTOFF)
    return matches[0] if matches else None
