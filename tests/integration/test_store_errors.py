"""What the SQL stores do when the database refuses a request: a value refused as data is
`UnstorableValue` (400), a statement refused as wrong is `StoreFault` (500), and only an
outage is `StoreUnavailable` (503). Values go straight to the store, under any validation
the HTTP edge does, because this mapping is the safety net beneath it."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest
from structlog.testing import capture_logs

from autokey.adapters.postgres.store import PostgresStore
from autokey.adapters.sqlite.store import SqliteStore
from autokey.domain.model.errors import StoreFault, StoreUnavailable, UnstorableValue
from autokey.domain.model.offers import Money
from autokey.ports.store import Store, UnitOfWork
from tests import builders as b
from tests.http import running_api
from tests.services import scratch_postgres

DropTable = Callable[[str], Awaitable[None]]


@attrs.frozen
class Opened:
    store: Store
    drop_table: DropTable


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def sql(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opened]:
    """A migrated SQL store, and a way to break its schema behind its back."""
    if request.param == "sqlite":
        path = tmp_path / "errors.db"
        lite = await SqliteStore.open(path)
        await lite.migrate()

        async def drop_lite(table: str) -> None:
            with sqlite3.connect(path) as conn:
                conn.execute(f"DROP TABLE {table}")

        try:
            yield Opened(lite, drop_lite)
        finally:
            await lite.close()
        return
    async with scratch_postgres() as url:
        pg = await PostgresStore.open(url, min_size=1, max_size=4)
        await pg.migrate()

        async def drop_pg(table: str) -> None:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await conn.execute(f"DROP TABLE {table}".encode())

        try:
            yield Opened(pg, drop_pg)
        finally:
            await pg.close()


async def _token_named(tx: UnitOfWork, name: str) -> None:
    # Pool names and titles are refused by the model now; a token's name is checked when a
    # token is issued, not when one is built, so it can still carry what only the database
    # refuses (the safety net under the edge's validation).
    await tx.tokens.add(attrs.evolve(b.token(), name=name))


async def _order_of_quantity(tx: UnitOfWork, quantity: int) -> None:
    owner = b.seller()
    pool = b.pool(owner)
    offer = b.offer(owner, pool.id)
    await tx.pools.add(pool)
    await tx.offers.add(offer)
    await tx.orders.add(attrs.evolve(b.order(offer, b.seller()), quantity=quantity))


async def _offer_priced(tx: UnitOfWork, amount: str) -> None:
    owner = b.seller()
    offer = attrs.evolve(b.offer(owner, None), price=Money(amount=Decimal(amount), currency="EUR"))
    await tx.offers.add(offer)


Write = Callable[[UnitOfWork], Awaitable[None]]
BOTH = ("sqlite", "postgres")
REFUSED_VALUES: list[Any] = [
    pytest.param(lambda tx: _token_named(tx, "lone \ud800 surrogate"), BOTH, id="surrogate"),
    pytest.param(lambda tx: _order_of_quantity(tx, 2**70), BOTH, id="integer-over-64-bits"),
    pytest.param(lambda tx: _order_of_quantity(tx, 0), BOTH, id="check-constraint"),
    # SQLite stores text with NUL and amounts as text: only PostgreSQL refuses these.
    pytest.param(lambda tx: _token_named(tx, "nul \x00 name"), ("postgres",), id="nul"),
    pytest.param(lambda tx: _offer_priced(tx, "1e1000000"), ("postgres",), id="numeric-range"),
]


@pytest.mark.parametrize(("write", "engines"), REFUSED_VALUES)
async def test_a_value_the_database_refuses_is_unstorable_not_an_outage(
    sql: Opened, write: Write, engines: tuple[str, ...]
) -> None:
    if sql.store.name not in engines:
        pytest.skip(f"{sql.store.name} stores this value")
    with capture_logs() as logs, pytest.raises(UnstorableValue) as caught:
        async with sql.store.transaction() as tx:
            await write(tx)
    assert caught.value.__cause__ is not None  # the driver's error, chained for debugging
    (line,) = [entry for entry in logs if entry["event"] == "store.value_refused"]
    assert (line["store"], line["log_level"]) == (sql.store.name, "warning")
    assert set(line) == {"event", "log_level", "store", "error", "code"}
    pool = b.pool()
    async with sql.store.transaction() as tx:  # the store is fine afterwards
        await tx.pools.add(pool)
    async with sql.store.transaction() as tx:
        assert await tx.pools.get(pool.id) == pool


async def test_a_statement_the_database_refuses_is_a_fault_logged_without_values(
    sql: Opened,
) -> None:
    await sql.drop_table("webhook_nonces")
    nonce = "nonce-that-must-not-be-logged"
    with capture_logs() as logs, pytest.raises(StoreFault) as caught:
        async with sql.store.transaction() as tx:
            await tx.webhooks.remember_nonce(nonce, b.T0)
    assert caught.value.store == sql.store.name
    (line,) = [entry for entry in logs if entry["event"] == "store.statement_failed"]
    expected = {
        "sqlite": ("OperationalError", "SQLITE_ERROR"),
        "postgres": ("UndefinedTable", "42P01"),
    }
    assert (line["error"], line["code"]) == expected[sql.store.name]
    assert nonce not in repr(logs)


async def test_a_writer_lock_held_past_the_busy_timeout_is_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    store = await SqliteStore.open(path, busy_timeout_s=0.2)
    await store.migrate()
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable):
            async with store.transaction() as tx:
                await tx.pools.add(b.pool())
    finally:
        holder.close()
        await store.close()


async def test_a_refused_value_over_http_is_a_400_problem_not_a_503(sql: Opened) -> None:
    async with running_api(sql.store) as api:
        seller = await api.token()
        # A lone surrogate survives JSON decoding and no database can encode it.
        response = await api.client.post(
            "/key-pools",
            data=b'{"name": "lone \\ud800 surrogate"}',
            headers={**seller, "Content-Type": "application/json"},
        )
        body = await response.json(content_type=None)
    assert (response.status, response.content_type) == (400, "application/problem+json")
    # The edge may refuse the value itself (invalid_input) before the store does.
    assert body["code"] in ("unstorable_value", "invalid_input")
    assert "\ud800" not in str(body)


@pytest.mark.postgres
async def test_a_statement_timeout_is_an_outage_not_a_fault() -> None:
    async with scratch_postgres() as url:
        impatient = f"{url}?options=-c%20statement_timeout%3D200"
        store = await PostgresStore.open(impatient, min_size=1, max_size=2)
        await store.migrate()
        async with await psycopg.AsyncConnection.connect(url) as holder:
            # Another session holds the table; the store's read waits past its timeout.
            await holder.execute("LOCK TABLE key_pools IN ACCESS EXCLUSIVE MODE")
            try:
                with pytest.raises(StoreUnavailable) as caught:
                    async with store.transaction() as tx:
                        await tx.pools.get(b.pool().id)
            finally:
                await holder.rollback()
                await store.close()
    assert isinstance(caught.value.__cause__, psycopg.errors.QueryCanceled)
