"""Least privilege on Redis: who may do what on the servers the plugin starts.

Two ACL users: ``cleanroom`` (every right: the plugin and the test body) and ``default``, what a
sandboxed command gets (``REDISCLI_AUTH``, ``REDIS_URL``), with every key and channel of its
worker's server but none of the commands that reach beyond the data: no ``CONFIG``, ``SHUTDOWN``,
``MODULE``, ``DEBUG``, ``ACL SETUSER``, ``CLIENT KILL``, ``MONITOR``, replication or persistence
commands (category ``@admin``), no ``EVAL``/``FCALL``/``FUNCTION``/``SCRIPT`` (``@scripting``),
no ``FLUSHALL``, ``SWAPDB``, and no ``MIGRATE`` (which would make the server open a connection
wherever the command says, around the sandbox's network isolation).
"""

from __future__ import annotations

ADMIN_USER = "cleanroom"
#: The ``default`` user's rights, after its password.
SANDBOX_RULES = "~* &* +@all -@admin -@scripting -flushall -swapdb -migrate"


def acl_config(admin_password: str, sandbox_password: str) -> list[str]:
    """``redis.conf`` lines creating both users (a config file keeps passwords out of ``ps``)."""
    return [
        f"user default on >{sandbox_password} {SANDBOX_RULES}",
        f"user {ADMIN_USER} on >{admin_password} ~* &* +@all",
    ]
