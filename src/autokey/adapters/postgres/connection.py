"""Connections to PostgreSQL: the pool, the bounded connection, and the translation of
driver errors at the repository boundary.

Driver errors are translated by `translated`: unique violations become `DuplicateResource`,
foreign-key violations `NotFound` of the referenced resource, values the database refuses as
data (SQLSTATE classes 22 and 23, a NUL character, a string it cannot encode)
`UnstorableValue`, connection and operational failures `StoreUnavailable`, and anything else
(a statement refused as wrong) `StoreFault`. Nothing from psycopg escapes.

psycopg prepares a statement once a connection has run it five times, and PostgreSQL keeps
the generic plan it builds soon after until the table's statistics change. A table that was
nearly empty then (a new database, or one analysed while empty) gets a sequential scan, kept
while the table grows until autovacuum next analyses it, or for good where autovacuum is off.
The batch statements by primary key (a batch's orders and reservations read `FOR UPDATE` and
saved) are therefore planned on every execution for a batch of more than one
(`SqlRepository._prepare`): a custom plan from the table's size at that moment, once per batch. A
call run alone keeps its prepared statements: planning the save on every call made one
client's pay calls slower in three runs of three.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final, TypeVar
from uuid import UUID

import psycopg
from psycopg import errors as pg_errors
from psycopg.abc import PQGen
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from autokey.adapters.postgres import sql
from autokey.adapters.postgres.copies import Copies, Ledger
from autokey.adapters.postgres.rows import entity_rows
from autokey.adapters.store_errors import failed_statement, refused_value
from autokey.domain.model.errors import (
    AutokeyError,
    DuplicateResource,
    NotFound,
    StaleRead,
    StoreUnavailable,
)
from autokey.domain.model.pages import Page, PageRequest

STORE_NAME: Final = "postgres"
STALE: Final = "AK001"
"""The SQLSTATE of `autokey_stale` (migration 0015): a checked copy no longer matched."""

T = TypeVar("T")
E = TypeVar("E")
RV = TypeVar("RV")

Conn = psycopg.AsyncConnection[TupleRow]

# Keyset cursors: "after nothing" is expressed as after the nil UUID (ascending) or before
# the max UUID (descending), so each listing is one statement whatever the cursor.
MIN_UUID: Final = UUID(int=0)
MAX_UUID: Final = UUID(int=(1 << 128) - 1)


# Foreign keys (named in 0001_initial.sql) -> the resource a violation failed to find.
_REFERENCED: Final[Mapping[str, str]] = {
    "keys_pool_id_fkey": "pool",
    "offers_key_pool_id_fkey": "pool",
    "orders_offer_id_fkey": "offer",
    "orders_pool_id_fkey": "pool",
}


class translated:  # a context manager used as a function: `with translated(...):`
    """Re-raise psycopg errors as port errors.

    `resource`/`id` name what a unique violation would duplicate; `refs` gives, per
    referenced resource, the id a foreign-key violation failed to find. A class rather than
    a generator context manager: it wraps every statement, and costs fewer calls.
    """

    __slots__ = ("_id", "_refs", "_resource")

    def __init__(
        self, resource: str = "", id: str = "", *, refs: Mapping[str, str] | None = None
    ) -> None:
        self._resource, self._id, self._refs = resource, id, refs

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, _: object
    ) -> None:
        if isinstance(exc, pg_errors.UniqueViolation):
            raise DuplicateResource(resource=self._resource, id=self._id) from exc
        if isinstance(exc, pg_errors.ForeignKeyViolation):
            missing = _REFERENCED.get(exc.diag.constraint_name or "", "")
            raise NotFound(resource=missing, id=(self._refs or {}).get(missing, "")) from exc
        if isinstance(exc, psycopg.Error):
            raise classified(exc) from exc
        if isinstance(exc, UnicodeEncodeError):  # a lone surrogate: no encoding can send it
            raise refused_value(STORE_NAME, exc, None) from exc


def classified(exc: psycopg.Error) -> AutokeyError:
    if exc.sqlstate == STALE:
        return StaleRead(store=STORE_NAME)
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        # Lost connection, pool or statement timeout, admin shutdown, deadlock, serialization
        # failure: the request may succeed later.
        return StoreUnavailable(store=STORE_NAME)
    if isinstance(exc, pg_errors.NoDataFound) and exc.diag.message_detail:
        # A queued write that found a row missing (autokey_not_found, migration 0014).
        return NotFound(resource=exc.diag.message_primary or "", id=exc.diag.message_detail)
    if isinstance(exc, pg_errors.UniqueViolation):
        # Repositories turn the duplicates they expect into DuplicateResource; one that
        # surfaces elsewhere (a queued write failing at COMMIT) is a bug, not bad input.
        return failed_statement(STORE_NAME, exc, exc.sqlstate)
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
        return refused_value(STORE_NAME, exc, exc.sqlstate)
    return failed_statement(STORE_NAME, exc, exc.sqlstate)


class Flight:
    """Steps of one unit of work that send their statements before any of them waits for an
    answer (`UnitOfWork.together`): in pipeline mode, their answers then come back in one
    round trip. Outside `run`, `sent` returns at once."""

    def __init__(self) -> None:
        self._steps: set[asyncio.Task[Any]] | None = None
        self._ready: set[asyncio.Task[Any]] = set()
        self._go = asyncio.Event()

    async def run(self, steps: Sequence[Awaitable[Any]]) -> list[Any]:
        if self._steps is not None:  # nested: the outer flight holds the connection
            return [await step for step in steps]
        self._go.clear()
        self._ready = set()
        tasks = [asyncio.ensure_future(self._step(step)) for step in steps]
        self._steps = set(tasks)
        try:
            results = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._steps = None
        errors = [result for result in results if isinstance(result, BaseException)]
        if errors:
            # A refused statement aborts the pipeline, and a step whose own answer was lost to
            # that fails too; the refusal is the error, whichever step happened to read it.
            raise next((e for e in errors if not _aborted(e)), errors[0])
        return results

    async def _step(self, step: Awaitable[Any]) -> Any:
        try:
            return await step
        finally:
            self._arrive()  # a step that ended early (no statement, an error) holds none back

    async def sent(self) -> None:
        """Called by a step once its statement is sent: wait until every step has sent its
        own (or ended), so that the first to read flushes them all at once."""
        if self._steps is None or self._go.is_set():
            return
        self._arrive()
        await self._go.wait()

    def _arrive(self) -> None:
        if self._steps is None:
            return
        task = asyncio.current_task()
        if task in self._steps:
            self._ready.add(task)
        if len(self._ready) == len(self._steps):
            self._go.set()


def _aborted(error: BaseException) -> bool:
    """`error` only says that an earlier statement of the pipeline failed."""
    return isinstance(error.__cause__, pg_errors.PipelineAborted)


class SqlRepository:
    """A connection plus the ways repositories talk to it, all translated."""

    def __init__(
        self,
        conn: Conn,
        pipeline: psycopg.AsyncPipeline | None = None,
        flight: Flight | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self._conn, self._pipeline = conn, pipeline
        self._flight = flight or Flight()
        self._ledger = ledger or Ledger(Copies(), optimistic=False)

    async def _all(self, query: str, params: Sequence[Any] | Mapping[str, Any]) -> list[TupleRow]:
        with translated():
            cur = await self._conn.execute(query, params)
            await self._flight.sent()
            return await cur.fetchall()

    async def _one(self, query: str, params: Sequence[Any] | Mapping[str, Any]) -> TupleRow | None:
        with translated():
            cur = await self._conn.execute(query, params)
            await self._flight.sent()
            return await cur.fetchone()

    async def _entities(
        self,
        cls: type[E],
        query: str,
        params: Sequence[Any] | Mapping[str, Any],
        *,
        batch: int = 1,
    ) -> list[E]:
        """The rows of `query`, each structured into a `cls` as it is read; `batch`: the
        entities it reads by primary key (see `_prepare`)."""
        with translated():
            cur = self._conn.cursor(row_factory=entity_rows(cls))
            await cur.execute(query, params, prepare=self._prepare(batch))
            await self._flight.sent()
            return await cur.fetchall()

    async def _owned_page(
        self, cls: type[E], query: str, owner: UUID, page: PageRequest, key: Callable[[E], UUID]
    ) -> Page[E]:
        """A keyset page of an owner's rows: `query` takes (owner, after, limit) and walks
        ids upwards; one row more than the page says whether another page follows."""
        rows = await self._entities(cls, query, (owner, page.after or MIN_UUID, page.limit + 1))
        return page_of(rows, page.limit, key)

    async def _entity(
        self, cls: type[E], query: str, params: Sequence[Any] | Mapping[str, Any]
    ) -> E | None:
        with translated():
            cur = self._conn.cursor(row_factory=entity_rows(cls))
            await cur.execute(query, params)
            await self._flight.sent()
            return await cur.fetchone()

    async def _run(
        self,
        query: str,
        params: Sequence[Any] | Mapping[str, Any],
        *,
        refs: Mapping[str, str] | None = None,
    ) -> int:
        """Execute a write; returns the number of rows it touched. In pipeline mode this waits
        for the answer (a round trip), so violations are raised and translated here."""
        with translated(refs=refs):
            cur = await self._conn.execute(query, params)
            await self._flight.sent()
            if self._pipeline is not None:
                await self._pipeline.sync()
            return cur.rowcount

    async def _send(
        self,
        query: str,
        params: Sequence[Any] | Mapping[str, Any],
        *,
        batch: int = 1,
    ) -> None:
        """Queue a write whose outcome the caller does not read (no rowcount, no expected
        violation): in pipeline mode it travels with the next statement that needs an answer,
        or with COMMIT; an error then surfaces there, as StoreUnavailable at the latest.
        `batch`: the entities it writes by primary key (see `_prepare`)."""
        with translated():
            await self._conn.execute(query, params, prepare=self._prepare(batch))

    @staticmethod
    def _prepare(batch: int) -> bool | None:
        """psycopg's `prepare` for a statement by primary key over `batch` entities: never
        prepared for more than one, so it is planned for the table as it is now (see the
        module's docstring); otherwise psycopg's default."""
        return False if batch > 1 else None


def page_of(items: list[T], limit: int, cursor: Callable[[T], UUID]) -> Page[T]:
    """`items` were fetched with LIMIT limit+1: an extra row means there is a next page."""
    if len(items) > limit:
        del items[limit:]
        return Page(items=items, next_after=cursor(items[-1]) if items else None)
    return Page(items=items, next_after=None)


_KEEPALIVE_IDLE_S: Final = 10
_KEEPALIVE_INTERVAL_S: Final = 3
_KEEPALIVE_COUNT: Final = 3
_CLIENT_GRACE_S: Final = 1.0
"""How much longer than the server's statement_timeout the client waits for an answer."""


class BoundedConnection(psycopg.AsyncConnection[TupleRow]):
    """A connection that gives up on the server after `deadline_s`.

    Every exchange with the server (statements, BEGIN, COMMIT, ROLLBACK) goes through
    `wait`. The server's statement_timeout cannot help when the network silently drops
    packets, and TCP keepalives cannot help when something in between still acknowledges
    them; so the client bounds every wait, and closes a connection left mid-statement (its
    state is unknown) instead of attempting a cancel that would hang the same way.
    """

    deadline_s: float | None = None

    async def wait(
        self,
        gen: PQGen[RV],
        interval: float = 0.1,
        timeout: float | None = None,  # noqa: ASYNC109 - psycopg's signature
    ) -> RV:
        try:
            return await super().wait(
                gen, interval, self.deadline_s if timeout is None else timeout
            )
        except psycopg.OperationalError:
            if self.pgconn.transaction_status == psycopg.pq.TransactionStatus.ACTIVE:
                self.pgconn.finish()
            raise


@contextmanager
def without_deadline(conn: Conn) -> Iterator[None]:
    """Let statements on `conn` run as long as they need (migrations), then restore."""
    if not isinstance(conn, BoundedConnection):
        yield
        return
    saved, conn.deadline_s = conn.deadline_s, None
    try:
        yield
    finally:
        conn.deadline_s = saved


async def _configure(conn: Conn, *, statement_timeout_ms: int) -> None:
    # Timestamps come back in UTC whatever the server's or role's default zone is; no
    # statement is JIT-compiled, whatever its plan's estimated cost (ADR 0039); and every
    # transaction is READ COMMITTED whatever default_transaction_isolation says (sent with
    # BEGIN, no extra round trip).
    if isinstance(conn, BoundedConnection):
        conn.deadline_s = statement_timeout_ms / 1000 + _CLIENT_GRACE_S
    await conn.execute(sql.SESSION_SETTINGS, (str(statement_timeout_ms),))
    await conn.set_isolation_level(psycopg.IsolationLevel.READ_COMMITTED)


async def open_pool(
    dsn: str,
    *,
    min_size: int,
    max_size: int,
    timeout_s: float,
    connect_timeout_s: int,
    statement_timeout_ms: int,
    tcp_user_timeout_ms: int,
) -> AsyncConnectionPool[Conn]:
    """An opened pool of bounded, configured autocommit connections (see `PostgresStore.open`)."""
    kwargs: dict[str, Any] = {
        "autocommit": True,
        "connect_timeout": connect_timeout_s,
        "keepalives": 1,
        "keepalives_idle": _KEEPALIVE_IDLE_S,
        "keepalives_interval": _KEEPALIVE_INTERVAL_S,
        "keepalives_count": _KEEPALIVE_COUNT,
        "tcp_user_timeout": tcp_user_timeout_ms,
    }
    try:
        for name in psycopg.conninfo.conninfo_to_dict(dsn):
            kwargs.pop(name, None)
    except psycopg.Error as exc:  # a malformed DSN
        raise StoreUnavailable(store=STORE_NAME) from exc
    pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
        dsn,
        connection_class=BoundedConnection,
        kwargs=kwargs,
        min_size=min_size,
        max_size=max_size,
        open=False,
        configure=functools.partial(_configure, statement_timeout_ms=statement_timeout_ms),
        # No check on checkout (it cost a round trip per transaction): a connection
        # killed by a server restart fails one request with StoreUnavailable (503, the
        # client retries) and the pool discards it when it comes back broken.
        timeout=timeout_s,
        name="autokey",
    )
    try:
        await pool.open(wait=True, timeout=timeout_s)
    except psycopg.Error as exc:  # PoolTimeout is an OperationalError
        await pool.close()
        raise StoreUnavailable(store=STORE_NAME) from exc
    return pool
