"""Which lines of the shared MariaDB server's error log belong to one test, for its failure
report (the server is shared by every xdist worker, see :mod:`..postgres.log`)."""

from __future__ import annotations

import re

#: How MariaDB's error log names a connection's database and user ("Aborted connection 12 to
#: db: 'x' user: 'y' host: ..."; "Access denied for user 'y'@'localhost' ...").
_MYSQL_NAMES = re.compile(r"\bdb: '(?P<db>[^']*)'|\buser:? '(?P<user>[^']*)'")


def mysql_lines(text: str, dbname: str, user: str) -> str:
    """The lines of MariaDB's error log that name no other database or user than ``dbname``
    and ``user``: the server-wide ones and this test's (the error log names no database on
    most lines; SQL errors are not logged at all)."""
    kept: list[str] = []
    for line in text.splitlines():
        names = [(m["db"], m["user"]) for m in _MYSQL_NAMES.finditer(line)]
        if all(db in (None, dbname) and who in (None, user) for db, who in names):
            kept.append(line)
    return "\n".join(kept)
