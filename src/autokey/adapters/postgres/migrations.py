"""Schema migrations: the numbered files of `migrations/`, applied once each and recorded
in `schema_migrations`."""

from __future__ import annotations

import re
from importlib import resources
from typing import Final

import attrs

from autokey.adapters.postgres import sql
from autokey.adapters.postgres.connection import Conn


@attrs.frozen(kw_only=True)
class Migration:
    """One numbered file of `migrations/`, e.g. `0001_initial.sql`."""

    version: int
    name: str
    sql: str = attrs.field(repr=False)


_MIGRATION_FILE = re.compile(r"(\d{4})_(\w+)\.sql")


def load_migrations() -> tuple[Migration, ...]:
    """Every migration shipped with the package, in version order."""
    found: dict[int, Migration] = {}
    for entry in (resources.files(__package__) / "migrations").iterdir():
        match = _MIGRATION_FILE.fullmatch(entry.name)
        if match is None:
            continue
        version = int(match[1])
        if version in found:
            raise RuntimeError(f"two migrations share version {version}")
        found[version] = Migration(
            version=version, name=match[2], sql=entry.read_text(encoding="utf-8")
        )
    return tuple(found[v] for v in sorted(found))


# Any fixed bigint works; this one spells "autokey" in ASCII.
MIGRATION_LOCK: Final = 0x6175746F6B6579


async def apply_migration(conn: Conn, migration: Migration) -> bool:
    """Apply one migration unless recorded already; True if applied now."""
    # One transaction per file, holding a transaction-scoped advisory lock: a second
    # process waits, then sees the version recorded and skips it.
    async with conn.transaction():
        await conn.execute(sql.NO_STATEMENT_TIMEOUT)
        await conn.execute(sql.ADVISORY_XACT_LOCK, (MIGRATION_LOCK,))
        await conn.execute(sql.CREATE_SCHEMA_MIGRATIONS)
        cur = await conn.execute(sql.APPLIED_VERSIONS)
        if migration.version in {r[0] for r in await cur.fetchall()}:
            return False
        # bytes: a file's text is not a LiteralString, and without parameters psycopg
        # sends it as-is (several statements allowed).
        await conn.execute(migration.sql.encode("utf-8"))
        await conn.execute(sql.RECORD_MIGRATION, (migration.version, migration.name))
    return True
