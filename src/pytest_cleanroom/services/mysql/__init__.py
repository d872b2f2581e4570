"""MariaDB as a service kind (``mysql``): a server per run, a database and a user per test.

Providers: :mod:`.process` (``mariadbd`` from the machine), :mod:`.container` (docker, podman),
:mod:`.external` (a ``mysql://`` URL). :mod:`.isolation` creates and drops each test's database
and user and undoes what an administrator connection changed.
"""

from __future__ import annotations

from .model import MysqlDatabase, MysqlServer

__all__ = ["MysqlDatabase", "MysqlServer"]
