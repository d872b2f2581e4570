"""Where a policy's hidden, readable and writable paths lead on the host, and what is refused.

A hidden path is hidden where its links lead (its real path); a link never lets a hidden path
through. Policies whose paths cannot both hold as the host's links are raise
:class:`~pytest_cleanroom.errors.PolicyError` naming the field, the path, where it leads and
the fix, before anything is started:

* a hidden path that leads to a path ``readable_paths`` names, or to one the sandbox makes
  itself (``/``, ``/proc``, ``/dev``, ``/sys``, the workspace; ``/tmp`` where it is the host's);
* a readable or writable path that leads, through a link, to a path the policy hides;
* a readable or writable path inside a hidden directory whose way there goes through a link
  (the sandbox would bind it where the link leads, not where it is named).

A path that leads nowhere (missing, a dangling link, a link loop) has nothing to hide or bind.
The host can still change a path between the plan and the mounts (a race no plan can close):
:func:`explained` then adds the field naming that path to the set-up step's own words.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable

from ...errors import PolicyError, SandboxError
from ...policy import Policy
from ..base import WORKSPACE_PATH
from .lookups import Lookups

#: Paths the sandbox makes itself: no hidden path can cover them.
SANDBOX_OWN = frozenset({"/", "/proc", "/dev", "/sys", WORKSPACE_PATH})

#: ``path -> the hidden path that hides it`` (``None``: it is visible).
HiddenBy = Callable[[str], str | None]


def normalized(path: str) -> str:
    """``path`` absolute and normalised as the plan uses it."""
    return os.path.normpath("/" + path.lstrip("/")) if path else "/"


def check_hidden(policy: Policy, real_of: dict[str, str], readable: Iterable[str]) -> None:
    """:class:`PolicyError` for a hidden path (``real_of``: each one's real path) that leads
    to a path the sandbox makes itself or that ``readable`` (the readable paths) names."""
    let_through = set(readable)
    for name, real in sorted(real_of.items()):
        own = real in SANDBOX_OWN or (real == "/tmp" and not policy.private_tmp)
        if own and name not in let_through:
            raise PolicyError(
                f"hidden_paths: {name!r}{_leads(name, real)} is a path the sandbox makes "
                f"itself (or the whole root), which no hidden path can cover; remove {name!r} "
                "from hidden_paths"
            )
        if real != name and real in let_through:
            raise PolicyError(
                f"hidden_paths: {name!r}{_leads(name, real)}, which readable_paths lets "
                f"through: a hidden path is hidden where its links lead, so one of the two "
                f"would not hold; remove {name!r} from hidden_paths, or {real!r} from "
                "readable_paths"
            )


def check_let_through(
    policy: Policy, lookups: Lookups, hidden_by: HiddenBy, named_hidden_by: HiddenBy
) -> None:
    """:class:`PolicyError` for a readable or writable path that leads through a link to a
    path the policy hides (``hidden_by``: what hides a real path, readable paths reached
    through links not counted), or that is inside a hidden directory (``named_hidden_by``, by
    names) with a link on the way there."""
    fields = (("readable_paths", policy.readable_paths), ("writable_paths", policy.writable_paths))
    for field, paths in fields:
        for name in sorted({normalized(p) for p in paths}):
            real, mode = lookups.resolve(name)
            if mode is None:
                continue  # nothing there: nothing to bind
            hider = hidden_by(real) if real != name else None
            if hider is not None:
                raise PolicyError(
                    f"{field}: {name!r}{_leads(name, real)}, which hidden_paths hides (as "
                    f"{hider!r}): a link does not let a hidden path through; name {real!r} "
                    f"itself in {field} if the sandbox is to reach it, or remove {name!r}"
                )
            parent = os.path.dirname(name)
            inside = named_hidden_by(parent)
            there = lookups.resolve(parent)[0]
            if inside is not None and there != parent:
                shown = os.path.join(there, os.path.basename(name))
                raise PolicyError(
                    f"{field}: {name!r} is inside {inside!r}, which hidden_paths hides, and "
                    f"its directory{_leads(parent, there)}: the sandbox binds a path inside a "
                    f"hidden directory where it is named, and a link there would move it; "
                    f"name {shown!r} in {field} instead"
                )


def _leads(name: str, real: str) -> str:
    return "" if real == name else f" leads to {real!r} (links resolved)"


def explained(policy: Policy, error: SandboxError) -> SandboxError:
    """``error`` (a sandbox's set-up failure) with the policy field naming the host path it
    names, and the fix, when one does (else ``error`` itself)."""
    text = str(error)
    fields = (
        ("hidden_paths", policy.hidden_paths),
        ("readable_paths", policy.readable_paths),
        ("writable_paths", policy.writable_paths),
    )
    for field, paths in fields:
        for path in sorted({normalized(p) for p in paths}, key=len, reverse=True):
            if _names(text, path):
                return SandboxError(
                    f"{text} ({field} entry {path!r}: the host changed it while the sandbox was "
                    "set up, or a link there leads where nothing can be mounted; run the "
                    "command again, and if it fails the same way, see what it is now and "
                    "docs/policies.md, 'Links in hidden, readable and writable paths')"
                )
    return error


def _names(text: str, path: str) -> bool:
    """Whether ``text`` names ``path`` itself (seen from a new root too), not a path in it."""
    pattern = r"(?:^|[\s'\"]|/newroot|/oldroot)" + re.escape(path) + r"(?=$|[\s:'\"])"
    return re.search(pattern, text) is not None
