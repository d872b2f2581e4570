"""Which lines of the shared PostgreSQL server's log belong to one test, for its failure report.

The server is shared by every xdist worker, so what it logs while a test runs mixes that test's
lines with those of tests running at the same time elsewhere. A test's section keeps its own
database's lines and the server-wide ones (the postmaster's or a background process's: a crash,
a shutdown), and drops those naming another database.
"""

from __future__ import annotations

import re

#: PostgreSQL's ``log_line_prefix`` on every provider that starts the server: the database and
#: user of the session (``%q``: nothing of that for the server's own processes).
POSTGRES_LOG_LINE_PREFIX = "%m [%p] %qdb=%d,user=%u "

_POSTGRES_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \S+ \[\d+\] "
    r"(?:db=(?P<db>[^,]*),user=\S* )?[A-Z][A-Z0-9]*:  "
)


def postgres_lines(text: str, dbname: str) -> str:
    """The lines of ``text`` (PostgreSQL's log with :data:`POSTGRES_LOG_LINE_PREFIX`) about
    ``dbname`` or the whole server; a message's continuation lines go with their first line.
    Lines in another format (a ``log_line_prefix`` set by the user) are all kept."""
    kept: list[str] = []
    keep = True
    for line in text.splitlines():
        start = _POSTGRES_LINE.match(line)
        if start is not None:
            keep = start["db"] is None or start["db"] == dbname
        if keep:
            kept.append(line)
    return "\n".join(kept)
