"""Migrations: applied once, in order, recorded, and safe to run from several processes."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from autokey.adapters.postgres import store as pg
from autokey.adapters.postgres.store import PostgresStore, load_migrations

pytestmark = pytest.mark.postgres

ALL_VERSIONS = [m.version for m in load_migrations()]

_MIGRATE_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from autokey.adapters.postgres.store import PostgresStore

    async def main(url: str) -> None:
        store = await PostgresStore.open(url, min_size=1, max_size=1)
        try:
            applied = await store.migrate()
        finally:
            await store.close()
        print(",".join(str(v) for v in applied))

    asyncio.run(main(sys.argv[1]))
    """
)


async def _recorded_versions(url: str) -> list[int]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT version FROM schema_migrations ORDER BY version")
        return [row[0] for row in await cur.fetchall()]


def test_shipped_migrations_are_numbered_from_one_without_gaps() -> None:
    assert list(range(1, len(ALL_VERSIONS) + 1)) == ALL_VERSIONS
    assert all(m.sql.strip() for m in load_migrations())


def test_migration_files_sit_inside_the_package() -> None:
    # They must ship in the wheel: hatchling packages everything under src/autokey.
    folder = Path(pg.__file__).parent / "migrations"
    assert sorted(p.name for p in folder.glob("*.sql"))[0] == "0001_initial.sql"


async def test_migrate_applies_everything_once_and_twice_is_a_no_op(pg_url: str) -> None:
    store = await PostgresStore.open(pg_url)
    try:
        assert await store.schema_version() == 0
        assert list(await store.migrate()) == ALL_VERSIONS
        assert await store.schema_version() == ALL_VERSIONS[-1]
        assert list(await store.migrate()) == []
        assert await store.schema_version() == ALL_VERSIONS[-1]
    finally:
        await store.close()
    assert await _recorded_versions(pg_url) == ALL_VERSIONS


async def test_two_processes_migrating_at_once_both_succeed_and_apply_each_version_once(
    pg_url: str,
) -> None:
    # Hold the migration lock so both processes are certainly waiting on it together,
    # then let them race.
    async with await psycopg.AsyncConnection.connect(pg_url) as blocker:
        await blocker.execute("SELECT pg_advisory_xact_lock(%s)", (pg._MIGRATION_LOCK,))
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _MIGRATE_SCRIPT,
                pg_url,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(2)
        ]
        async with asyncio.timeout(30):
            while True:
                cur = await blocker.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                )
                row = await cur.fetchone()
                if row is not None and row[0] == 2:
                    break
                await asyncio.sleep(0.05)
        await blocker.commit()  # releases the lock: both processes proceed at once

    async with asyncio.timeout(60):
        outputs = [await p.communicate() for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    applied = [[int(v) for v in out.decode().strip().split(",") if v] for out, _ in outputs]
    assert sorted(applied[0] + applied[1]) == ALL_VERSIONS
    assert await _recorded_versions(pg_url) == ALL_VERSIONS
