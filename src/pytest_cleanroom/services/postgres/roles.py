"""Least privilege on PostgreSQL: a login role per test database, and who may connect where.

Every test database ``cr_<run>_<worker>_<n>`` is owned by a role of the same name: no superuser,
no ``CREATEDB``/``CREATEROLE``/``REPLICATION``/``BYPASSRLS``, member of no predefined role, and
able to connect to its own database only (``sameuser`` in pg_hba.conf, and ``CONNECT`` revoked from
``PUBLIC`` on every database). The test body and the sandbox connect as that role; the server's
superuser stays with the plugin (and with a test that asks for it explicitly).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

#: Connections one test's role may hold at once (so that one test cannot exhaust the server).
CONNECTION_LIMIT = 64
#: PBKDF2 rounds of the SCRAM verifiers we store. The passwords are 144 random bits, so the
#: usual 4096 rounds (there to slow the guessing of human passwords) would only slow every connect.
SCRAM_ITERATIONS = 16


def ident(name: str) -> str:
    """``name`` quoted as an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """``text`` quoted as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def new_password() -> str:
    return secrets.token_urlsafe(18)


def scram_verifier(password: str, iterations: int = SCRAM_ITERATIONS) -> str:
    """The ``SCRAM-SHA-256$...`` secret PostgreSQL stores for ``password`` (RFC 5802/7677)."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def hba_rules(superuser: str, *, bootstrap: bool = False, address: str = "127.0.0.1/32") -> str:
    """pg_hba.conf of our servers: the superuser anywhere, any other role only into the database
    of its own name; a password everywhere. ``bootstrap`` lets the superuser in over the unix
    socket without one, only until the plugin has set its password (no test runs by then);
    ``address``: where TCP clients come from (``all`` in a container, behind Docker's NAT)."""
    local = "trust" if bootstrap else "scram-sha-256"
    return (
        "# written by pytest-cleanroom: see docs/services.md, 'Least privilege'\n"
        f"local all {ident(superuser)} {local}\n"
        "local sameuser all scram-sha-256\n"
        f"host all {ident(superuser)} {address} scram-sha-256\n"
        f"host sameuser all {address} scram-sha-256\n"
    )


def secure_superuser(conn: Any, superuser: str, password: str) -> None:
    """Give the superuser ``password`` (a cheap verifier) and close the server's other databases
    to everyone else; ``conn`` is an autocommit psycopg connection as that superuser."""
    verifier = literal(scram_verifier(password))
    conn.execute(f"ALTER ROLE {ident(superuser)} PASSWORD {verifier}")
    for statement in HARDEN_SERVER:
        conn.execute(statement)


#: Run once per server: nobody but the superuser and a database's owner may connect to it.
HARDEN_SERVER = (
    "REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC",
    "REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC",
)


def role_options(password: str) -> str:
    """What every per-test role is (and is not) allowed, with its password."""
    return (
        "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT "
        f"CONNECTION LIMIT {CONNECTION_LIMIT} PASSWORD {literal(scram_verifier(password))}"
    )


def create_owned_database(
    name: str, password: str, template: str, *, member_of: str | None, file_copy: bool
) -> list[str]:
    """Statements that create the role ``name`` and its database ``name``, cloned from
    ``template``. ``member_of``: the role owning the template's objects (so that the test's role
    may alter and drop them in its own copy)."""
    role = ident(name)
    create_role = f"CREATE ROLE {role} {role_options(password)}"
    if member_of:
        create_role += f" IN ROLE {ident(member_of)}"
    create_db = f"CREATE DATABASE {role} OWNER {role} TEMPLATE {ident(template)}"
    if file_copy:
        create_db += " STRATEGY FILE_COPY"  # small databases: copying files beats the WAL
    return [create_role, create_db, f"REVOKE ALL ON DATABASE {role} FROM PUBLIC"]


def drop_database(name: str, version_num: int) -> list[str]:
    """Statements that drop the database ``name``, ending the sessions still open on it."""
    if version_num >= 130000:
        return [f"DROP DATABASE IF EXISTS {ident(name)} WITH (FORCE)"]
    return [  # before 13: terminate the sessions, then drop
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = {literal(name)} AND pid <> pg_backend_pid()",
        f"DROP DATABASE IF EXISTS {ident(name)}",
    ]


def drop_owned_database(name: str, version_num: int) -> list[str]:
    """Statements that drop the database ``name`` and then its role."""
    return [*drop_database(name, version_num), f"DROP ROLE IF EXISTS {ident(name)}"]
