"""PostgreSQL store: psycopg 3 async over a `psycopg_pool.AsyncConnectionPool`.

The statements are in `sql`, the row converter in `rows`, the repositories in `repositories`
and `merchant`, connections and error translation in `connection`, migrations in
`migrations`.

Round trips (ADR 0016): a unit of work runs in psycopg's pipeline mode. BEGIN travels with
the first statement, writes whose outcome is already known (`_send`: saves, audit rows) travel
with the next statement that needs an answer, and COMMIT with the last of them, so a
transaction costs one round trip per statement whose result the caller reads, plus one; two
steps run through `UnitOfWork.together` share one (`connection.Flight`). An optimistic
transaction answers a locked order read or an offer read from a checked copy, which costs no
round trip of its own (`copies`, ADR 0040).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

from autokey.adapters.postgres import sql
from autokey.adapters.postgres.connection import (
    STORE_NAME,
    Conn,
    Flight,
    SqlRepository,
    classified,
    open_pool,
    without_deadline,
)
from autokey.adapters.postgres.copies import Copies, Ledger
from autokey.adapters.postgres.merchant import PostgresMerchantRepository
from autokey.adapters.postgres.migrations import apply_migration, load_migrations
from autokey.adapters.postgres.repositories import (
    PostgresAuditLog,
    PostgresDeliveryRepository,
    PostgresEndpointRepository,
    PostgresIdempotencyRepository,
    PostgresKeyRepository,
    PostgresKeyringRepository,
    PostgresKeyStage,
    PostgresOfferRepository,
    PostgresOrderRepository,
    PostgresPoolRepository,
    PostgresTokenRepository,
    PostgresWebhookRepository,
)
from autokey.domain.model.errors import StaleRead, StoreUnavailable
from autokey.ports.store import KeyStage, Store, UnitOfWork

R = TypeVar("R", bound=SqlRepository)


def _unit_of_work(conn: Conn, pipeline: psycopg.AsyncPipeline | None, ledger: Ledger) -> UnitOfWork:
    flight = Flight()

    def on(repository: type[R]) -> R:
        """`repository` on this transaction's connection, pipeline, flight and ledger."""
        return repository(conn, pipeline, flight, ledger)

    return UnitOfWork(
        tokens=on(PostgresTokenRepository),
        pools=on(PostgresPoolRepository),
        keys=on(PostgresKeyRepository),
        offers=on(PostgresOfferRepository),
        orders=on(PostgresOrderRepository),
        idempotency=on(PostgresIdempotencyRepository),
        audit=on(PostgresAuditLog),
        webhooks=on(PostgresWebhookRepository),
        endpoints=on(PostgresEndpointRepository),
        deliveries=on(PostgresDeliveryRepository),
        keyring=on(PostgresKeyringRepository),
        merchant=on(PostgresMerchantRepository),
        together_steps=flight.run,
    )


@asynccontextmanager
async def _pipelined_transaction(conn: Conn) -> AsyncIterator[psycopg.AsyncPipeline]:
    """BEGIN ... COMMIT in pipeline mode, without a round trip of their own: BEGIN is queued
    ahead of the first statement and COMMIT behind the last, and leaving the pipeline syncs
    (one round trip, raising the error of anything queued that failed).

    psycopg's `conn.transaction()` would sync once more for each of its nested pipelines.
    A block that raises is rolled back with the same sync, or, if a statement had already
    failed (an aborted pipeline skips the queued ROLLBACK), with one more round trip."""
    failed = False
    try:
        async with conn.pipeline() as pipeline:
            await conn.execute(sql.BEGIN, prepare=False)
            try:
                yield pipeline
            except BaseException:
                failed = True
                # The block's own exception is the one to raise; on a broken connection
                # the pool discards it when it comes back.
                with contextlib.suppress(psycopg.Error):
                    await conn.execute(sql.ROLLBACK, prepare=False)
                raise
            await conn.execute(sql.COMMIT, prepare=False)
    finally:
        if failed and conn.info.transaction_status in (
            TransactionStatus.INTRANS,
            TransactionStatus.INERROR,
        ):
            with contextlib.suppress(psycopg.Error):
                await conn.execute(sql.ROLLBACK, prepare=False)


class PostgresStore(Store):
    """The PostgreSQL database behind a connection pool."""

    name = STORE_NAME

    def __init__(self, pool: AsyncConnectionPool[Conn]) -> None:
        """Wrap an already opened pool whose connections are in autocommit mode."""
        self._pool = pool
        self._copies = Copies()

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout_s: float = 5.0,
        connect_timeout_s: int = 5,
        statement_timeout_ms: int = 5000,
        tcp_user_timeout_ms: int = 10000,
    ) -> PostgresStore:
        """Open a pool on `dsn` and wait until `min_size` connections are up.

        `timeout_s` bounds both this wait and every later wait for a free connection;
        `connect_timeout_s` one connection attempt. The server cancels a statement after
        `statement_timeout_ms`; the client abandons (and closes) a connection that has not
        answered one second after that, so a network black-hole cannot hang a request.
        `tcp_user_timeout_ms` and TCP keepalives make the kernel notice a dead peer.
        Parameters already in the DSN win. Raises StoreUnavailable if the database cannot
        be reached in time.
        """
        pool = await open_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            statement_timeout_ms=statement_timeout_ms,
            tcp_user_timeout_ms=tcp_user_timeout_ms,
        )
        return cls(pool)

    def stage_keys(self) -> KeyStage:
        return PostgresKeyStage()

    @asynccontextmanager
    async def transaction(self, *, optimistic: bool = False) -> AsyncIterator[UnitOfWork]:
        # Autocommit connections + an explicit, pipelined BEGIN ... COMMIT; the pool gets
        # the connection back idle, and a broken one is discarded by the pool. Checked
        # copies (ADR 0040): what the transaction saw of orders and offers is kept once it
        # commits; if it fails, the copies it used are dropped, and a failure after using
        # one is StaleRead, whatever it was (it may have come from a stale copy).
        ledger = Ledger(self._copies, optimistic=optimistic)
        try:
            async with self._pool.connection() as conn, _pipelined_transaction(conn) as pipe:
                yield _unit_of_work(conn, pipe, ledger)
        except Exception as exc:
            ledger.failed()
            if ledger.used:
                raise StaleRead(store=STORE_NAME) from exc
            if isinstance(exc, psycopg.Error):
                # Checkout, BEGIN or COMMIT failed (repositories translate their own errors).
                raise classified(exc) from exc
            raise
        ledger.committed()

    @asynccontextmanager
    async def bulk_transaction(self) -> AsyncIterator[UnitOfWork]:
        # COPY cannot run in pipeline mode: a classic transaction, a round trip a statement.
        # A COPY of 10^6 rows takes tens of seconds, so like a migration it runs without the
        # statement timeout; TCP keepalives and tcp_user_timeout still end a dead connection.
        try:
            async with self._pool.connection() as conn:
                with without_deadline(conn):
                    async with conn.transaction():
                        await conn.execute(sql.NO_STATEMENT_TIMEOUT)
                        yield _unit_of_work(conn, None, Ledger(self._copies, optimistic=False))
        except psycopg.Error as exc:
            raise classified(exc) from exc

    async def ping(self) -> None:
        try:
            async with self._pool.connection() as conn:
                await conn.execute(sql.PING)
        except psycopg.Error as exc:
            raise StoreUnavailable(store=STORE_NAME) from exc

    @property
    def shipped_schema_version(self) -> int:
        return max(m.version for m in load_migrations())

    async def schema_version(self) -> int:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(sql.HAS_SCHEMA_MIGRATIONS)
                exists = await cur.fetchone()
                if not (exists and exists[0]):
                    return 0
                cur = await conn.execute(sql.SCHEMA_VERSION)
                row = await cur.fetchone()
                return 0 if row is None else int(row[0])
        except psycopg.Error as exc:
            raise StoreUnavailable(store=STORE_NAME) from exc

    async def migrate(self) -> Sequence[int]:
        applied_now: list[int] = []
        try:
            async with self._pool.connection() as conn:
                for migration in load_migrations():
                    with without_deadline(conn):
                        if await apply_migration(conn, migration):
                            applied_now.append(migration.version)
        except psycopg.Error as exc:
            raise StoreUnavailable(store=STORE_NAME) from exc
        return applied_now

    async def close(self) -> None:
        await self._pool.close()
