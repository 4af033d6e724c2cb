"""Creating the PostgreSQL database itself, for the one-variable development start.

The store adapter connects to a database that exists; this module answers whether it does and
creates it when the role may (`CREATEDB`). It speaks to the server's maintenance database
(`postgres`) with the same credentials. Production never calls it: there the database is made
by whoever runs PostgreSQL, and `autokey migrate` is explicit.
"""

from __future__ import annotations

import enum

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

MAINTENANCE_DATABASE = "postgres"


class DatabaseState(enum.Enum):
    EXISTS = "exists"
    MISSING = "missing"
    UNREACHABLE = "unreachable"


def database_name(dsn: str) -> str:
    """The database a DSN names (libpq's default: the user name)."""
    params = conninfo_to_dict(dsn)
    return str(params.get("dbname") or params.get("user") or "postgres")


def _maintenance_dsn(dsn: str) -> str:
    return make_conninfo(dsn, dbname=MAINTENANCE_DATABASE, connect_timeout=5)


async def database_state(dsn: str) -> DatabaseState:
    """Whether the DSN's database exists, asked of the maintenance database."""
    try:
        async with await psycopg.AsyncConnection.connect(
            _maintenance_dsn(dsn), autocommit=True
        ) as conn:
            cur = await conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (database_name(dsn),)
            )
            return DatabaseState.EXISTS if await cur.fetchone() else DatabaseState.MISSING
    except psycopg.Error:
        return DatabaseState.UNREACHABLE


async def create_database(dsn: str) -> bool:
    """Create the DSN's database; True if created, False if the role may not (or a race
    created it first, which the caller sees as EXISTS on its next look)."""
    try:
        async with await psycopg.AsyncConnection.connect(
            _maintenance_dsn(dsn), autocommit=True
        ) as conn:
            await conn.execute(
                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database_name(dsn)))
            )
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.DuplicateDatabase):
        return False
    return True
