"""PostgreSQL as a service kind: one server per run, a database cloned per test.

Providers: :mod:`.process` (``initdb``/``postgres`` from the machine), :mod:`.container`
(docker, podman), :mod:`.external` (a URL). :mod:`.template` loads the run's template once,
:mod:`.isolation` clones it for each test with a role of its own (:mod:`.roles`) and undoes
server-wide changes; :mod:`.log` picks a test's lines out of the shared server's log.
"""

from __future__ import annotations

from .model import PostgresDatabase, PostgresServer

__all__ = ["PostgresDatabase", "PostgresServer"]
