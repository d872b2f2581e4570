"""gpack ids: reverse-DNS names such as ``io.ggen.rust.cli-subcommand``."""

from __future__ import annotations

import re

ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9][a-z0-9_-]*)+$")


def check_id(value: str) -> str:
    """Return ``value`` if it is a valid gpack id, else raise ``ValueError`` saying why."""
    if not isinstance(value, str) or len(value) > 128 or not ID_PATTERN.match(value):
        raise ValueError(
            f"{value!r} is not a reverse-DNS id (lowercase, at least two dot-separated parts,"
            " e.g. 'io.ggen.rust.cli-subcommand')"
        )
    return value
