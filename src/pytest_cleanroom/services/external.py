"""What every kind's external provider shares: a URL's password never appears in a message."""

from __future__ import annotations

import re


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
