"""'Did you mean': the known name closest to a misspelt one, for errors that point at the fix."""

from __future__ import annotations

from collections.abc import Iterable

#: How close a name must be to a known one to be suggested at all.
SUGGEST_CUTOFF = 0.6
#: How close an unknown key must be to a known one to be taken for its misspelling (an error);
#: a farther one is a key of another tool, which the lifecycle and template formats ignore
#: with a warning.
TYPO_CUTOFF = 0.8


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice ``word`` was most likely meant to be, if one is close enough.

    A choice that starts with ``word`` wins over one that is merely similar: a shortened name
    (``io.ggen.python.cli``) means the one it begins, not a sibling with a similar spelling.
    """
    import difflib  # only on the error path

    candidates = list(choices)
    extending = [choice for choice in candidates if word and choice.startswith(word)]
    if extending:
        candidates, cutoff = extending, 0.0
    else:
        cutoff = SUGGEST_CUTOFF
    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=cutoff)
    return matches[0] if matches else None


def did_you_mean(word: str, choices: Iterable[str], *, aside: bool = False) -> str:
    """``"; did you mean 'x'?"`` when a choice is close to ``word``, else ``""``.

    ``aside=True`` gives the parenthesised form ``" (did you mean 'x'?)"``, for messages of the
    shape ``key: unknown key (did you mean 'x'?)``.
    """
    return hint_for(closest(word, choices), aside=aside)


def hint_for(guess: str | None, *, aside: bool = False) -> str:
    """The "did you mean" of :func:`did_you_mean` for a ``guess`` already found (``""``: none)."""
    if guess is None:
        return ""
    return f" (did you mean {guess!r}?)" if aside else f"; did you mean {guess!r}?"


def typo_of(word: str, choices: Iterable[str]) -> str | None:
    """The choice ``word`` is probably a misspelling of, if any (see :data:`TYPO_CUTOFF`)."""
    import difflib

    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=TYPO_CUTOFF)
    return matches[0] if matches else None
