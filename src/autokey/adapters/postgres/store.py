"""PostgreSQL store: psycopg 3 async over a `psycopg_pool.AsyncConnectionPool`.

Every unit of work is one READ COMMITTED transaction on one pooled connection. Concurrency
comes from row locks, not from isolation level: `claim` and `lock_expired` take rows with
`FOR UPDATE SKIP LOCKED`, so concurrent buyers and sweepers never wait on each other.

Driver errors are translated at the repository boundary (see `_translated`): unique
violations become `DuplicateResource`, foreign-key violations `NotFound` of the referenced
resource, values the database refuses as data (SQLSTATE classes 22 and 23, a NUL character,
a string it cannot encode) `UnstorableValue`, connection and operational failures
`StoreUnavailable`, and anything else (a statement refused as wrong) `StoreFault`. Nothing
from psycopg escapes.

SQL lives in the module constants below (psycopg prepares a statement server-side after a
few executions, keyed by its text, so each query must be one stable string).

Round trips (ADR 0016): a unit of work runs in psycopg's pipeline mode. BEGIN travels with
the first statement, writes whose outcome is already known (`_send`: saves, audit rows) travel
with the next statement that needs an answer, and COMMIT with the last of them, so a
transaction costs one round trip per statement whose result the caller reads, plus one.
"""

from __future__ import annotations

import contextlib
import functools
import re
import struct
import tempfile
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import IO, Any, Final, TypeVar
from uuid import UUID

import attrs
import psycopg
from psycopg import errors as pg_errors
from psycopg.abc import PQGen
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from autokey.adapters.store_errors import failed_statement, refused_value, require_saved
from autokey.domain.model.audit import AuditAction, AuditEvent
from autokey.domain.model.auth import ApiToken, Role
from autokey.domain.model.errors import (
    AutokeyError,
    DuplicateResource,
    NotFound,
    StoreUnavailable,
)
from autokey.domain.model.idempotency import IdempotencyRecord, IdempotencyState, StoredResponse
from autokey.domain.model.ids import (
    DeliveryId,
    EndpointId,
    EventId,
    KeyId,
    OfferId,
    OrderId,
    PoolId,
    SubjectId,
    TokenId,
)
from autokey.domain.model.keys import (
    Key,
    KeyPool,
    KeyStatus,
    MasterKeyId,
    PinnedIndexKey,
    PoolCounts,
)
from autokey.domain.model.merchant import G2A_CUSTOMER, Channel
from autokey.domain.model.offers import DeliveryType, Money, Offer, OfferStatus, StockLevel
from autokey.domain.model.orders import (
    UPSTREAM_ORDER,
    Order,
    OrderStatus,
    SalesFilter,
    UpstreamState,
)
from autokey.domain.model.outbound import (
    Delivery,
    DeliveryStatus,
    EndpointStatus,
    OutboundEventType,
    WebhookEndpoint,
)
from autokey.domain.model.pages import Page, PageRequest
from autokey.domain.model.webhooks import WebhookEvent, WebhookEventType, WebhookOutcome
from autokey.ports.store import (
    AuditLog,
    DeliveryRepository,
    EndpointRepository,
    IdempotencyRepository,
    KeyRepository,
    KeyringRepository,
    KeyStage,
    OfferRepository,
    OrderRepository,
    PoolRepository,
    Store,
    TokenRepository,
    UnitOfWork,
    WebhookRepository,
)

STORE_NAME: Final = "postgres"

T = TypeVar("T")
RV = TypeVar("RV")

Conn = psycopg.AsyncConnection[TupleRow]

# Keyset cursors: "after nothing" is expressed as after the nil UUID (ascending) or before
# the max UUID (descending), so each listing is one statement whatever the cursor.
_MIN_UUID: Final = UUID(int=0)
_MAX_UUID: Final = UUID(int=(1 << 128) - 1)

# ---------------------------------------------------------------------------------------
# Error translation
# ---------------------------------------------------------------------------------------


# Foreign keys (named in 0001_initial.sql) -> the resource a violation failed to find.
_REFERENCED: Final[Mapping[str, str]] = {
    "keys_pool_id_fkey": "pool",
    "offers_key_pool_id_fkey": "pool",
    "orders_offer_id_fkey": "offer",
    "orders_pool_id_fkey": "pool",
}


@contextmanager
def _translated(
    resource: str = "", id: str = "", *, refs: Mapping[str, str] | None = None
) -> Iterator[None]:
    """Re-raise psycopg errors as port errors.

    `resource`/`id` name what a unique violation would duplicate; `refs` gives, per
    referenced resource, the id a foreign-key violation failed to find.
    """
    try:
        yield
    except pg_errors.UniqueViolation as exc:
        raise DuplicateResource(resource=resource, id=id) from exc
    except pg_errors.ForeignKeyViolation as exc:
        missing = _REFERENCED.get(exc.diag.constraint_name or "", "")
        raise NotFound(resource=missing, id=(refs or {}).get(missing, "")) from exc
    except psycopg.Error as exc:
        raise _classified(exc) from exc
    except UnicodeEncodeError as exc:  # a lone surrogate: no encoding can send it
        raise refused_value(STORE_NAME, exc, None) from exc


def _classified(exc: psycopg.Error) -> AutokeyError:
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        # Lost connection, pool or statement timeout, admin shutdown, deadlock, serialization
        # failure: the request may succeed later.
        return StoreUnavailable(store=STORE_NAME)
    if isinstance(exc, pg_errors.UniqueViolation):
        # Repositories turn the duplicates they expect into DuplicateResource; one that
        # surfaces elsewhere (a queued write failing at COMMIT) is a bug, not bad input.
        return failed_statement(STORE_NAME, exc, exc.sqlstate)
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
        return refused_value(STORE_NAME, exc, exc.sqlstate)
    return failed_statement(STORE_NAME, exc, exc.sqlstate)


class _Sql:
    """A connection plus the ways repositories talk to it, all translated."""

    def __init__(self, conn: Conn, pipeline: psycopg.AsyncPipeline | None = None) -> None:
        self._conn, self._pipeline = conn, pipeline

    async def _all(self, query: str, params: Sequence[Any] | Mapping[str, Any]) -> list[TupleRow]:
        with _translated():
            cur = await self._conn.execute(query, params)
            return await cur.fetchall()

    async def _one(self, query: str, params: Sequence[Any] | Mapping[str, Any]) -> TupleRow | None:
        with _translated():
            cur = await self._conn.execute(query, params)
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
        with _translated(refs=refs):
            cur = await self._conn.execute(query, params)
            if self._pipeline is not None:
                await self._pipeline.sync()
            return cur.rowcount

    async def _send(self, query: str, params: Sequence[Any] | Mapping[str, Any]) -> None:
        """Queue a write whose outcome the caller does not read (no rowcount, no expected
        violation): in pipeline mode it travels with the next statement that needs an answer,
        or with COMMIT; an error then surfaces there, as StoreUnavailable at the latest."""
        with _translated():
            await self._conn.execute(query, params)


def _page(items: list[T], limit: int, cursor: Callable[[T], UUID]) -> Page[T]:
    """`items` were fetched with LIMIT limit+1: an extra row means there is a next page."""
    if len(items) > limit:
        del items[limit:]
        return Page(items=items, next_after=cursor(items[-1]) if items else None)
    return Page(items=items, next_after=None)


# ---------------------------------------------------------------------------------------
# Row -> domain conversion: one small function per entity, columns in query order.
# ---------------------------------------------------------------------------------------


def _token_from_row(row: TupleRow) -> ApiToken:
    return ApiToken(
        id=TokenId(row[0]),
        subject=SubjectId(row[1]),
        role=Role(row[2]),
        name=row[3],
        secret_hash=bytes(row[4]),
        created_at=row[5],
        revoked_at=row[6],
        last_used_at=row[7],
    )


def _pool_from_row(row: TupleRow) -> KeyPool:
    return KeyPool(id=PoolId(row[0]), seller_id=SubjectId(row[1]), name=row[2], created_at=row[3])


def _key_from_row(row: TupleRow) -> Key:
    return Key(
        id=KeyId(row[0]),
        pool_id=PoolId(row[1]),
        status=KeyStatus(row[2]),
        sealed=bytes(row[3]),
        fingerprint=bytes(row[4]),
        created_at=row[5],
        order_id=None if row[6] is None else OrderId(row[6]),
        reserved_at=row[7],
        delivered_at=row[8],
    )


def _offer_from_row(row: TupleRow) -> Offer:
    return Offer(
        id=OfferId(row[0]),
        seller_id=SubjectId(row[1]),
        title=row[2],
        price=Money(amount=row[3], currency=row[4]),
        delivery_type=DeliveryType(row[5]),
        key_pool_id=None if row[6] is None else PoolId(row[6]),
        status=OfferStatus(row[7]),
        created_at=row[8],
        updated_at=row[9],
        g2a_product_id=row[10],
        max_price=None if row[11] is None else Money(amount=row[11], currency=row[12]),
        low_stock_threshold=row[13],
        recorded_stock_level=StockLevel(row[14]),
    )


def _order_from_row(row: TupleRow) -> Order:
    return Order(
        id=OrderId(row[0]),
        buyer_id=SubjectId(row[1]),
        seller_id=SubjectId(row[2]),
        offer_id=OfferId(row[3]),
        pool_id=PoolId(row[4]),
        quantity=row[5],
        unit_price=Money(amount=row[6], currency=row[7]),
        status=OrderStatus(row[8]),
        created_at=row[9],
        updated_at=row[10],
        reserved_until=row[11],
        paid_at=row[12],
        fulfilled_at=row[13],
        canceled_at=row[14],
        cancel_reason=row[15],
        upstream_order_id=row[16],
        upstream_state=None if row[17] is None else UpstreamState(row[17]),
    )


def _idempotency_from_row(row: TupleRow) -> IdempotencyRecord:
    status, body = row[7], row[8]
    return IdempotencyRecord(
        scope=row[0],
        key=row[1],
        fingerprint=bytes(row[2]),
        state=IdempotencyState(row[3]),
        created_at=row[4],
        locked_until=row[5],
        expires_at=row[6],
        response=None if status is None else StoredResponse(status=status, body=bytes(body)),
    )


def _webhook_event_from_row(row: TupleRow) -> WebhookEvent:
    return WebhookEvent(
        event_id=row[0],
        type=WebhookEventType(row[1]),
        upstream_order_id=row[2],
        occurred_at=row[3],
        received_at=row[4],
        outcome=WebhookOutcome(row[5]),
        payload=bytes(row[6]),
    )


def _event_from_row(row: TupleRow) -> AuditEvent:
    return AuditEvent(
        id=EventId(row[0]),
        occurred_at=row[1],
        action=AuditAction(row[2]),
        actor=None if row[3] is None else SubjectId(row[3]),
        pool_id=None if row[4] is None else PoolId(row[4]),
        order_id=None if row[5] is None else OrderId(row[5]),
        key_ids=tuple(KeyId(k) for k in row[6]),
        details=row[7],
    )


# ---------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------

_INSERT_TOKEN: Final = """
INSERT INTO api_tokens (id, subject, role, name, secret_hash, created_at, revoked_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""  # noqa: S105 - SQL, not a secret
_REVOKE_TOKEN: Final = """
UPDATE api_tokens SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL
"""  # noqa: S105 - SQL, not a secret
_TOKEN_COLUMNS: Final = "id, subject, role, name, secret_hash, created_at, revoked_at, last_used_at"  # noqa: S105 - SQL
_TOKEN_BY_HASH: Final = f"""
SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE secret_hash = %s
"""
_TOKENS_ALL: Final = f"SELECT {_TOKEN_COLUMNS} FROM api_tokens ORDER BY id"
_RECORD_TOKEN_USE: Final = """
UPDATE api_tokens t SET last_used_at = u.at
FROM unnest(%s::uuid[], %s::timestamptz[]) AS u(id, at)
WHERE t.id = u.id AND (t.last_used_at IS NULL OR t.last_used_at < u.at)
"""  # noqa: S105 - SQL, not a secret


class PostgresTokenRepository(_Sql, TokenRepository):
    async def add(self, token: ApiToken) -> None:
        # ON CONFLICT DO NOTHING rather than catching the violation: the transaction
        # stays usable after a duplicate, as it does in every other store.
        inserted = await self._run(
            _INSERT_TOKEN,
            (
                token.id,
                token.subject,
                token.role.value,
                token.name,
                token.secret_hash,
                token.created_at,
                token.revoked_at,
            ),
        )
        if not inserted:
            raise DuplicateResource(resource="token", id=str(token.id))

    async def find_by_secret_hash(self, secret_hash: bytes) -> ApiToken | None:
        row = await self._one(_TOKEN_BY_HASH, (secret_hash,))
        return None if row is None else _token_from_row(row)

    async def revoke(self, token_id: TokenId, at: datetime) -> bool:
        return await self._run(_REVOKE_TOKEN, (at, token_id)) == 1

    async def list_all(self) -> Sequence[ApiToken]:
        return [_token_from_row(row) for row in await self._all(_TOKENS_ALL, ())]

    async def record_use(self, used: Mapping[TokenId, datetime]) -> None:
        if used:
            await self._run(_RECORD_TOKEN_USE, (list(used), list(used.values())))


# ---------------------------------------------------------------------------------------
# Pools
# ---------------------------------------------------------------------------------------

_INSERT_POOL: Final = """
INSERT INTO key_pools (id, seller_id, name, created_at) VALUES (%s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""
_POOL_BY_ID: Final = "SELECT id, seller_id, name, created_at FROM key_pools WHERE id = %s"
_POOLS_OF_SELLER: Final = """
SELECT id, seller_id, name, created_at FROM key_pools
WHERE seller_id = %s AND id > %s ORDER BY id LIMIT %s
"""
# Counts are the folded totals plus the deltas appended since (migration 0007's triggers).
_POOL_COUNTS: Final = """
SELECT status, sum(n)::bigint FROM (
    SELECT status, n FROM key_counts WHERE pool_id = %(pool)s
    UNION ALL
    SELECT status, delta FROM key_count_deltas WHERE pool_id = %(pool)s
) AS c
GROUP BY status
"""
_AVAILABLE_COUNTS: Final = """
SELECT pool_id, sum(n)::bigint FROM (
    SELECT pool_id, n FROM key_counts WHERE pool_id = ANY(%(pools)s) AND status = 'AVAILABLE'
    UNION ALL
    SELECT pool_id, delta FROM key_count_deltas
    WHERE pool_id = ANY(%(pools)s) AND status = 'AVAILABLE'
) AS c
GROUP BY pool_id
"""
# One statement: concurrent folders each move only deltas they deleted, and upsert in one
# order, so they never deadlock; claims never touch key_counts.
_FOLD_COUNTS: Final = """
WITH folded AS (
    DELETE FROM key_count_deltas RETURNING pool_id, status, delta
)
INSERT INTO key_counts (pool_id, status, n)
SELECT pool_id, status, sum(delta) FROM folded
GROUP BY pool_id, status
ORDER BY pool_id, status
ON CONFLICT (pool_id, status) DO UPDATE SET n = key_counts.n + EXCLUDED.n
"""


class PostgresPoolRepository(_Sql, PoolRepository):
    async def add(self, pool: KeyPool) -> None:
        inserted = await self._run(
            _INSERT_POOL, (pool.id, pool.seller_id, pool.name, pool.created_at)
        )
        if not inserted:
            raise DuplicateResource(resource="pool", id=str(pool.id))

    async def get(self, pool_id: PoolId) -> KeyPool | None:
        row = await self._one(_POOL_BY_ID, (pool_id,))
        return None if row is None else _pool_from_row(row)

    async def list_for_seller(self, seller_id: SubjectId, page: PageRequest) -> Page[KeyPool]:
        rows = await self._all(
            _POOLS_OF_SELLER, (seller_id, page.after or _MIN_UUID, page.limit + 1)
        )
        return _page([_pool_from_row(r) for r in rows], page.limit, lambda x: x.id)

    async def counts(self, pool_id: PoolId) -> PoolCounts:
        rows = await self._all(_POOL_COUNTS, {"pool": pool_id})
        return PoolCounts.from_mapping({KeyStatus(status): n for status, n in rows})

    async def available_counts(self, pool_ids: Collection[PoolId]) -> Mapping[PoolId, int]:
        wanted = list(dict.fromkeys(pool_ids))
        result: dict[PoolId, int] = dict.fromkeys(wanted, 0)
        if wanted:
            for pool_id, n in await self._all(_AVAILABLE_COUNTS, {"pools": wanted}):
                result[PoolId(pool_id)] = n
        return result

    async def fold_counts(self) -> int:
        return await self._run(_FOLD_COUNTS, ())


# ---------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------

# One round trip per batch, however large: the batch travels as six arrays, in binary
# (%b) because text-dumping 10,000 ids and ciphertexts costs as much as the insert itself.
_INSERT_KEYS: Final = """
INSERT INTO keys (id, pool_id, status, sealed, fingerprint, created_at)
SELECT * FROM unnest(
    %b::uuid[], %b::uuid[], %b::text[], %b::bytea[], %b::bytea[], %b::timestamptz[]
)
ON CONFLICT (fingerprint) DO NOTHING
RETURNING id
"""
_KEY_BY_ID: Final = """
SELECT id, pool_id, status, sealed, fingerprint, created_at, order_id, reserved_at, delivered_at
FROM keys WHERE id = %s
"""
_KEY_BY_ID_FOR_UPDATE: Final = """
SELECT id, pool_id, status, sealed, fingerprint, created_at, order_id, reserved_at, delivered_at
FROM keys WHERE id = %s
FOR UPDATE
"""
_KEY_BY_FINGERPRINT: Final = """
SELECT id, pool_id, status, sealed, fingerprint, created_at, order_id, reserved_at, delivered_at
FROM keys WHERE fingerprint = %s
"""
_SAVE_KEY: Final = """
UPDATE keys SET status = %s, order_id = %s, reserved_at = %s, delivered_at = %s
WHERE id = %s
"""
_KEYS_OF_POOL_IN_STATUS: Final = """
SELECT id, pool_id, status, sealed, fingerprint, created_at, order_id, reserved_at, delivered_at
FROM keys
WHERE pool_id = %s AND status = %s AND id > %s
ORDER BY id LIMIT %s
"""
# Any status: merge the four (pool_id, status, id) index ranges instead of sorting the
# whole pool, so a page costs the same on a pool of ten keys or ten million.
_KEYS_OF_POOL: Final = """
SELECT * FROM (
    (SELECT id, pool_id, status, sealed, fingerprint, created_at, order_id, reserved_at,
            delivered_at
     FROM keys WHERE pool_id = %(pool)s AND status = 'AVAILABLE' AND id > %(after)s
     ORDER BY id LIMIT %(limit)s)
    UNION ALL
    (SELECT id, pool_id, status, sealed, fingerprint, created_at, order_id, reserved_at,
            delivered_at
     FROM keys WHERE pool_id = %(pool)s AND status = 'RESERVED' AND id > %(after)s
     ORDER BY id LIMIT %(limit)s)
    UNION ALL
    (SELECT id, pool_id, status, sealed, fingerprint, created_at, order_id, reserved_at,
            delivered_at
     FROM keys WHERE pool_id = %(pool)s AND status = 'DELIVERED' AND id > %(after)s
     ORDER BY id LIMIT %(limit)s)
    UNION ALL
    (SELECT id, pool_id, status, sealed, fingerprint, created_at, order_id, reserved_at,
            delivered_at
     FROM keys WHERE pool_id = %(pool)s AND status = 'INVALID' AND id > %(after)s
     ORDER BY id LIMIT %(limit)s)
) AS k
ORDER BY id LIMIT %(limit)s
"""
# Oldest first by (created_at, id), which only the keys_claim_order index provides (0003).
_CLAIM_KEYS: Final = """
UPDATE keys SET status = 'RESERVED', order_id = %s, reserved_at = %s
WHERE id IN (
    SELECT id FROM keys
    WHERE pool_id = %s AND status = 'AVAILABLE'
    ORDER BY created_at, id
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
RETURNING id
"""
# The same claim from the pool's mark on (migration 0007): the index range starts at the
# oldest key housekeeping found AVAILABLE, past the dead entries of the keys claimed before.
_CLAIM_KEYS_FROM_MARK: Final = """
UPDATE keys SET status = 'RESERVED', order_id = %s, reserved_at = %s
WHERE id IN (
    SELECT id FROM keys
    WHERE pool_id = %s AND status = 'AVAILABLE'
        AND created_at >= coalesce(
            (SELECT created_at FROM key_claim_marks WHERE pool_id = %s), '-infinity'
        )
    ORDER BY created_at, id
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
RETURNING id
"""
# Every pool with an AVAILABLE key gets its mark set to the oldest one (lowering too, which
# frees keys a concurrent release made AVAILABLE below a mark this statement raised). Marks
# another transaction holds (a release lowering them) are skipped until the next run, so
# housekeeping never waits on, nor deadlocks with, a sweeper releasing keys of many pools.
_ADVANCE_CLAIM_MARKS: Final = """
WITH oldest AS (
    SELECT p.id AS pool_id, k.created_at
    FROM key_pools p
    CROSS JOIN LATERAL (
        SELECT created_at FROM keys
        WHERE pool_id = p.id AND status = 'AVAILABLE'
        ORDER BY created_at, id
        LIMIT 1
    ) AS k
),
free AS (
    SELECT m.pool_id FROM key_claim_marks m JOIN oldest o USING (pool_id)
    WHERE m.created_at <> o.created_at
    FOR UPDATE OF m SKIP LOCKED
),
moved AS (
    UPDATE key_claim_marks m SET created_at = o.created_at
    FROM free f JOIN oldest o USING (pool_id)
    WHERE m.pool_id = f.pool_id
    RETURNING m.pool_id
),
added AS (
    INSERT INTO key_claim_marks (pool_id, created_at)
    SELECT pool_id, created_at FROM oldest
    ON CONFLICT (pool_id) DO NOTHING
    RETURNING pool_id
)
SELECT (SELECT count(*) FROM moved) + (SELECT count(*) FROM added)
"""
_COUNT_AVAILABLE: Final = "SELECT count(*) FROM keys WHERE pool_id = %s AND status = 'AVAILABLE'"
_KEYS_OF_ORDER: Final = """
SELECT id, pool_id, status, sealed, fingerprint, created_at, order_id, reserved_at, delivered_at
FROM keys WHERE order_id = %s
ORDER BY id
"""
_DELIVERED_TO: Final = """
SELECT order_id, id FROM keys
WHERE order_id = ANY(%s) AND status = 'DELIVERED'
ORDER BY order_id, id
"""
_RELEASE_ORDER: Final = """
UPDATE keys SET status = 'AVAILABLE', order_id = NULL, reserved_at = NULL
WHERE order_id = %s AND status = 'RESERVED'
RETURNING id
"""
_DELIVER_ORDER: Final = """
UPDATE keys SET status = 'DELIVERED', delivered_at = %s
WHERE order_id = %s AND status = 'RESERVED'
RETURNING id
"""


# Bulk uploads (`add_staged`). The fast path COPYs the staged rows straight into `keys`
# (COPY batches heap inserts; INSERT ... SELECT inserts row by row and ran at 0.74x COPY
# here). COPY knows no ON CONFLICT, so a repeated fingerprint fails it; the savepoint then
# rolls back and the same rows are COPYed into a temporary table and merged with
# ON CONFLICT DO NOTHING, earliest position first. Uploads serialise on an advisory lock
# held until commit, so two of them never wait on each other's fingerprints in opposite
# orders (a deadlock).
_UPLOAD_LOCK: Final = 0x6175746F6B6575  # "autokeu"
_LOCK_UPLOADS: Final = "SELECT pg_advisory_xact_lock(%s)"
_COPY_KEYS: Final = """
COPY keys (id, pool_id, status, sealed, fingerprint, created_at) FROM STDIN (FORMAT BINARY)
"""
_CREATE_UPLOAD_STAGE: Final = """
CREATE TEMPORARY TABLE upload_stage (
    position    bigint GENERATED ALWAYS AS IDENTITY (MINVALUE 0 START WITH 0),
    id          uuid        NOT NULL,
    pool_id     uuid        NOT NULL,
    status      text        NOT NULL,
    sealed      bytea       NOT NULL,
    fingerprint bytea       NOT NULL,
    created_at  timestamptz NOT NULL
) ON COMMIT DROP
"""
_COPY_UPLOAD_STAGE: Final = """
COPY upload_stage (id, pool_id, status, sealed, fingerprint, created_at)
FROM STDIN (FORMAT BINARY)
"""
_MERGE_UPLOAD_STAGE: Final = """
WITH stored AS (
    INSERT INTO keys (id, pool_id, status, sealed, fingerprint, created_at)
    SELECT id, pool_id, status, sealed, fingerprint, created_at
    FROM upload_stage ORDER BY position
    ON CONFLICT (fingerprint) DO NOTHING
    RETURNING id
)
SELECT s.position FROM upload_stage AS s
WHERE NOT EXISTS (SELECT FROM stored WHERE stored.id = s.id)
ORDER BY s.position
"""
_COPY_SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # no flags, no header extension
_COPY_TRAILER: Final = b"\xff\xff"
_PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_COPY_BLOCK: Final = 1024 * 1024


class PostgresKeyStage(KeyStage):
    """Keys as rows of PostgreSQL's binary COPY format in an anonymous temporary file
    (unlinked at creation: a kill -9 leaves nothing behind)."""

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self._file.write(_COPY_SIGNATURE)
        self._count = 0

    def put(self, keys: Sequence[Key]) -> None:
        self._file.write(b"".join(map(_copy_row, keys)))
        self._count += len(keys)

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        self._file.close()

    def blocks(self) -> Iterator[bytes]:
        """The whole COPY stream, trailer included, in blocks of bounded size."""
        self._file.flush()
        self._file.seek(0)
        while block := self._file.read(_COPY_BLOCK):
            yield block
        yield _COPY_TRAILER


def _copy_row(key: Key) -> bytes:
    """One tuple of the binary COPY format: a field count, then each field's length and bytes
    (uuid: 16 bytes; text and bytea: raw; timestamptz: int64 microseconds since 2000)."""
    status, sealed, fingerprint = key.status.value.encode(), key.sealed, key.fingerprint
    micros = (key.created_at - _PG_EPOCH) // _MICROSECOND
    return struct.pack(
        f">hi16si16si{len(status)}si{len(sealed)}si{len(fingerprint)}siq",
        6,
        16,
        key.id.bytes,
        16,
        key.pool_id.bytes,
        len(status),
        status,
        len(sealed),
        sealed,
        len(fingerprint),
        fingerprint,
        8,
        micros,
    )


def _sorted_ids(rows: list[TupleRow]) -> list[KeyId]:
    return sorted(KeyId(r[0]) for r in rows)


class PostgresKeyRepository(_Sql, KeyRepository):
    async def add_staged(self, stage: KeyStage) -> Sequence[int]:
        if not isinstance(stage, PostgresKeyStage):
            raise TypeError(f"a stage of another store: {type(stage).__name__}")
        if not len(stage):
            return []
        with _translated("key"):
            await self._conn.execute(_LOCK_UPLOADS, (_UPLOAD_LOCK,))
            try:
                async with self._conn.transaction():  # a savepoint
                    await self._copy(_COPY_KEYS, stage)
                return []
            except pg_errors.UniqueViolation:
                pass  # a fingerprint stored already, or repeated in the stage: merge instead
            await self._conn.execute(_CREATE_UPLOAD_STAGE)
            await self._copy(_COPY_UPLOAD_STAGE, stage)
            cur = await self._conn.execute(_MERGE_UPLOAD_STAGE)
            return [row[0] for row in await cur.fetchall()]

    async def _copy(self, statement: str, stage: PostgresKeyStage) -> None:
        async with self._conn.cursor() as cur, cur.copy(statement) as copy:
            for block in stage.blocks():
                await copy.write(block)

    async def add_new(self, keys: Sequence[Key]) -> frozenset[KeyId]:
        if not keys:
            return frozenset()
        # Inserting in fingerprint order means two batches that share fingerprints lock
        # them in the same order and wait for each other instead of deadlocking.
        batch = sorted(keys, key=lambda k: k.fingerprint)
        params = (
            [k.id for k in batch],
            [k.pool_id for k in batch],
            [k.status.value for k in batch],
            [k.sealed for k in batch],
            [k.fingerprint for k in batch],
            [k.created_at for k in batch],
        )
        with _translated("key", str(batch[0].id), refs={"pool": str(batch[0].pool_id)}):
            cur = await self._conn.execute(_INSERT_KEYS, params)
            rows = await cur.fetchall()
        if rows and len(rows) == len(batch):
            # Nothing skipped: the ids are exactly the batch's.
            return frozenset(k.id for k in batch)
        return frozenset(KeyId(r[0]) for r in rows)

    async def get(self, key_id: KeyId, *, for_update: bool = False) -> Key | None:
        row = await self._one(_KEY_BY_ID_FOR_UPDATE if for_update else _KEY_BY_ID, (key_id,))
        return None if row is None else _key_from_row(row)

    async def find_by_fingerprint(self, fingerprint: bytes) -> Key | None:
        row = await self._one(_KEY_BY_FINGERPRINT, (fingerprint,))
        return None if row is None else _key_from_row(row)

    async def save(self, key: Key) -> None:
        changed = await self._run(
            _SAVE_KEY,
            (key.status.value, key.order_id, key.reserved_at, key.delivered_at, key.id),
        )
        require_saved(changed, "key", key.id)

    async def list_in_pool(
        self, pool_id: PoolId, status: KeyStatus | None, page: PageRequest
    ) -> Page[Key]:
        after, limit = page.after or _MIN_UUID, page.limit + 1
        if status is None:
            rows = await self._all(_KEYS_OF_POOL, {"pool": pool_id, "after": after, "limit": limit})
        else:
            rows = await self._all(_KEYS_OF_POOL_IN_STATUS, (pool_id, status.value, after, limit))
        return _page([_key_from_row(r) for r in rows], page.limit, lambda x: x.id)

    async def claim(
        self, pool_id: PoolId, order_id: OrderId, quantity: int, now: datetime
    ) -> Sequence[KeyId]:
        if quantity <= 0:
            return []
        rows = await self._all(_CLAIM_KEYS_FROM_MARK, (order_id, now, pool_id, pool_id, quantity))
        if len(rows) < quantity:
            # Short above the mark: a key may have become AVAILABLE below it while
            # housekeeping raised it; the full range finds it.
            rows += await self._all(_CLAIM_KEYS, (order_id, now, pool_id, quantity - len(rows)))
        return _sorted_ids(rows)

    async def advance_claim_marks(self) -> int:
        row = await self._one(_ADVANCE_CLAIM_MARKS, ())
        return 0 if row is None else int(row[0])

    async def count_available(self, pool_id: PoolId) -> int:
        row = await self._one(_COUNT_AVAILABLE, (pool_id,))
        return 0 if row is None else int(row[0])

    async def for_order(self, order_id: OrderId) -> Sequence[Key]:
        return [_key_from_row(r) for r in await self._all(_KEYS_OF_ORDER, (order_id,))]

    async def delivered_to(
        self, order_ids: Collection[OrderId]
    ) -> Mapping[OrderId, Sequence[KeyId]]:
        found: dict[OrderId, list[KeyId]] = {}
        for order_id, key_id in await self._all(_DELIVERED_TO, (list(order_ids),)):
            found.setdefault(OrderId(order_id), []).append(KeyId(key_id))
        return found

    async def release_order(self, order_id: OrderId) -> Sequence[KeyId]:
        return _sorted_ids(await self._all(_RELEASE_ORDER, (order_id,)))

    async def deliver_order(self, order_id: OrderId, now: datetime) -> Sequence[KeyId]:
        return _sorted_ids(await self._all(_DELIVER_ORDER, (now, order_id)))


# ---------------------------------------------------------------------------------------
# Keyring (ADR 0011): bytes 2-5 of a sealed value name its master key (keys_sealed_with, 0004)
# ---------------------------------------------------------------------------------------

# A loose index scan: one probe of keys_sealed_with per distinct master key id.
_MASTER_KEY_IDS: Final = """
WITH RECURSIVE ids AS (
    SELECT (
        SELECT substring(sealed FROM 2 FOR 4) AS id FROM keys
        ORDER BY substring(sealed FROM 2 FOR 4) LIMIT 1
    ) AS id
    UNION ALL
    SELECT (
        SELECT substring(sealed FROM 2 FOR 4) FROM keys
        WHERE substring(sealed FROM 2 FOR 4) > ids.id
        ORDER BY substring(sealed FROM 2 FOR 4) LIMIT 1
    )
    FROM ids WHERE ids.id IS NOT NULL
)
SELECT id FROM ids WHERE id IS NOT NULL
UNION
SELECT substring(sealed FROM 2 FOR 4) FROM index_key
UNION
SELECT substring(sealed_secret FROM 2 FOR 4) FROM webhook_endpoints
"""
_INDEX_KEY: Final = "SELECT key_id, sealed FROM index_key"
_PIN_INDEX_KEY: Final = """
INSERT INTO index_key (singleton, key_id, sealed) VALUES (1, %s, %s)
ON CONFLICT (singleton) DO NOTHING
"""
_RESEAL_INDEX_KEY: Final = "UPDATE index_key SET sealed = %s"
_KEYS_SEALED_UNDER: Final = """
SELECT id, pool_id, status, sealed, fingerprint, created_at, order_id, reserved_at, delivered_at
FROM keys
WHERE id > %s AND substring(sealed FROM 2 FOR 4) = ANY(%s::bytea[])
ORDER BY id LIMIT %s
FOR UPDATE SKIP LOCKED
"""
_RESEAL_KEY: Final = "UPDATE keys SET sealed = %s WHERE id = %s"


class PostgresKeyringRepository(_Sql, KeyringRepository):
    async def master_key_ids(self) -> frozenset[MasterKeyId]:
        return frozenset(
            MasterKeyId(bytes(r[0]).hex()) for r in await self._all(_MASTER_KEY_IDS, ())
        )

    async def index_key(self) -> PinnedIndexKey | None:
        row = await self._one(_INDEX_KEY, ())
        return None if row is None else PinnedIndexKey(id=row[0], sealed=bytes(row[1]))

    async def pin_index_key(self, key: PinnedIndexKey) -> PinnedIndexKey:
        # A concurrent pin waits on the primary key, then does nothing; READ COMMITTED lets
        # the next statement see the winner's row.
        await self._run(_PIN_INDEX_KEY, (key.id, key.sealed))
        pinned = await self.index_key()
        assert pinned is not None
        return pinned

    async def reseal_index_key(self, sealed: bytes) -> None:
        await self._run(_RESEAL_INDEX_KEY, (sealed,))

    async def sealed_under(
        self, master_key_ids: Collection[MasterKeyId], after: KeyId | None, limit: int
    ) -> Sequence[Key]:
        ids = [bytes.fromhex(i) for i in master_key_ids]
        rows = await self._all(_KEYS_SEALED_UNDER, (after or _MIN_UUID, ids, limit))
        return [_key_from_row(r) for r in rows]

    async def reseal_key(self, key_id: KeyId, sealed: bytes) -> None:
        await self._run(_RESEAL_KEY, (sealed, key_id))


# ---------------------------------------------------------------------------------------
# Offers
# ---------------------------------------------------------------------------------------

OFFER_COLUMNS: Final = """
id, seller_id, title, price_amount, price_currency, delivery_type, key_pool_id, status,
created_at, updated_at, g2a_product_id, max_price_amount, max_price_currency,
low_stock_threshold, stock_level
"""
_INSERT_OFFER: Final = f"""
INSERT INTO offers ({OFFER_COLUMNS})
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""
_SAVE_OFFER: Final = """
UPDATE offers SET title = %s, price_amount = %s, price_currency = %s, delivery_type = %s,
    key_pool_id = %s, status = %s, updated_at = %s, g2a_product_id = %s, max_price_amount = %s,
    max_price_currency = %s, low_stock_threshold = %s, stock_level = %s
WHERE id = %s
"""
_OFFER_BY_ID: Final = f"SELECT {OFFER_COLUMNS} FROM offers WHERE id = %s"
_OFFERS_OF_SELLER: Final = f"""
SELECT {OFFER_COLUMNS} FROM offers
WHERE seller_id = %s AND id > %s
ORDER BY id LIMIT %s
"""
# NO KEY UPDATE: sweeps exclude each other, but an order inserted meanwhile (its foreign key
# takes KEY SHARE on the offer) never waits for a sweep.
_OFFERS_STOCKED: Final = f"""
SELECT {OFFER_COLUMNS} FROM offers
WHERE status = 'active' AND delivery_type = 'AUTO_KEY'
    AND (%(pool)s::uuid IS NULL OR key_pool_id = %(pool)s) AND id > %(after)s
ORDER BY id LIMIT %(limit)s
FOR NO KEY UPDATE SKIP LOCKED
"""


class PostgresOfferRepository(_Sql, OfferRepository):
    async def add(self, offer: Offer) -> None:
        inserted = await self._run(
            _INSERT_OFFER,
            (
                offer.id,
                offer.seller_id,
                offer.title,
                offer.price.amount,
                offer.price.currency,
                offer.delivery_type.value,
                offer.key_pool_id,
                offer.status.value,
                offer.created_at,
                offer.updated_at,
                offer.g2a_product_id,
                None if offer.max_price is None else offer.max_price.amount,
                None if offer.max_price is None else offer.max_price.currency,
                offer.low_stock_threshold,
                offer.recorded_stock_level.value,
            ),
            refs={"pool": str(offer.key_pool_id)},
        )
        if not inserted:
            raise DuplicateResource(resource="offer", id=str(offer.id))

    async def save(self, offer: Offer) -> None:
        changed = await self._run(
            _SAVE_OFFER,
            (
                offer.title,
                offer.price.amount,
                offer.price.currency,
                offer.delivery_type.value,
                offer.key_pool_id,
                offer.status.value,
                offer.updated_at,
                offer.g2a_product_id,
                None if offer.max_price is None else offer.max_price.amount,
                None if offer.max_price is None else offer.max_price.currency,
                offer.low_stock_threshold,
                offer.recorded_stock_level.value,
                offer.id,
            ),
            refs={"pool": str(offer.key_pool_id)},
        )
        require_saved(changed, "offer", offer.id)

    async def get(self, offer_id: OfferId) -> Offer | None:
        row = await self._one(_OFFER_BY_ID, (offer_id,))
        return None if row is None else _offer_from_row(row)

    async def list_for_seller(self, seller_id: SubjectId, page: PageRequest) -> Page[Offer]:
        rows = await self._all(
            _OFFERS_OF_SELLER, (seller_id, page.after or _MIN_UUID, page.limit + 1)
        )
        return _page([_offer_from_row(r) for r in rows], page.limit, lambda x: x.id)

    async def lock_stocked(self, pool_id: PoolId | None, page: PageRequest) -> Page[Offer]:
        rows = await self._all(
            _OFFERS_STOCKED,
            {"pool": pool_id, "after": page.after or _MIN_UUID, "limit": page.limit + 1},
        )
        return _page([_offer_from_row(r) for r in rows], page.limit, lambda x: x.id)


# ---------------------------------------------------------------------------------------
# Orders
# ---------------------------------------------------------------------------------------

_INSERT_ORDER: Final = """
INSERT INTO orders (
    id, buyer_id, seller_id, offer_id, pool_id, quantity, unit_price_amount,
    unit_price_currency, status, created_at, updated_at, reserved_until, paid_at,
    fulfilled_at, canceled_at, cancel_reason, upstream_order_id, upstream_state
)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""
_SAVE_ORDER: Final = """
UPDATE orders SET status = %s, updated_at = %s, reserved_until = %s, paid_at = %s,
    fulfilled_at = %s, canceled_at = %s, cancel_reason = %s, upstream_order_id = %s,
    upstream_state = %s
WHERE id = %s
"""
_ORDER_COLUMNS: Final = """
id, buyer_id, seller_id, offer_id, pool_id, quantity, unit_price_amount, unit_price_currency,
    status, created_at, updated_at, reserved_until, paid_at, fulfilled_at, canceled_at,
    cancel_reason, upstream_order_id, upstream_state
"""
_ORDER_BY_ID: Final = f"""
SELECT {_ORDER_COLUMNS}
FROM orders WHERE id = %s
"""
_ORDER_BY_ID_FOR_UPDATE: Final = f"""
SELECT {_ORDER_COLUMNS}
FROM orders WHERE id = %s
FOR UPDATE
"""
_ORDERS_OF_BUYER: Final = f"""
SELECT {_ORDER_COLUMNS}
FROM orders
WHERE buyer_id = %s AND id < %s
ORDER BY id DESC LIMIT %s
"""
_ORDERS_OF_BUYER_IN_STATUS: Final = f"""
SELECT {_ORDER_COLUMNS}
FROM orders
WHERE buyer_id = %s AND status = %s AND id < %s
ORDER BY id DESC LIMIT %s
"""
_ORDERS_OF_SELLER: Final = f"""
SELECT {_ORDER_COLUMNS}
FROM orders
WHERE seller_id = %(seller)s AND id < %(before)s
    AND (%(g2a)s::boolean IS NULL OR (buyer_id = %(g2a_customer)s) = %(g2a)s)
    AND (%(status)s::text IS NULL OR status = %(status)s)
    AND (%(offer)s::uuid IS NULL OR offer_id = %(offer)s)
    AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)
    AND (%(until)s::timestamptz IS NULL OR created_at < %(until)s)
ORDER BY id DESC LIMIT %(limit)s
"""
_LOCK_EXPIRED_ORDERS: Final = f"""
SELECT {_ORDER_COLUMNS}
FROM orders
WHERE status = 'PENDING' AND reserved_until <= %s
ORDER BY reserved_until, id
LIMIT %s
FOR UPDATE SKIP LOCKED
"""
_ORDER_BY_UPSTREAM_ID: Final = f"""
SELECT {_ORDER_COLUMNS}
FROM orders WHERE upstream_order_id = %s
"""
_ORDER_BY_UPSTREAM_ID_FOR_UPDATE: Final = f"""
SELECT {_ORDER_COLUMNS}
FROM orders WHERE upstream_order_id = %s
FOR UPDATE
"""
# Walks orders_fulfilling_updated_at_idx; id breaks ties so the order is stable.
_FULFILLING_ORDERS: Final = f"""
SELECT {_ORDER_COLUMNS}
FROM orders
WHERE status = 'FULFILLING'
ORDER BY updated_at, id
LIMIT %s
"""
_ORDER_EXISTS: Final = "SELECT 1 FROM orders WHERE id = %s"


class PostgresOrderRepository(_Sql, OrderRepository):
    async def add(self, order: Order) -> None:
        # ON CONFLICT without a target covers the id and the upstream id alike, so a
        # duplicate of either leaves the transaction usable.
        inserted = await self._run(
            _INSERT_ORDER,
            (
                order.id,
                order.buyer_id,
                order.seller_id,
                order.offer_id,
                order.pool_id,
                order.quantity,
                order.unit_price.amount,
                order.unit_price.currency,
                order.status.value,
                order.created_at,
                order.updated_at,
                order.reserved_until,
                order.paid_at,
                order.fulfilled_at,
                order.canceled_at,
                order.cancel_reason,
                order.upstream_order_id,
                None if order.upstream_state is None else order.upstream_state.value,
            ),
            refs={"offer": str(order.offer_id), "pool": str(order.pool_id)},
        )
        if inserted:
            return
        upstream_id = order.upstream_order_id
        if upstream_id is not None and await self._one(_ORDER_EXISTS, (order.id,)) is None:
            raise DuplicateResource(resource=UPSTREAM_ORDER, id=upstream_id)
        raise DuplicateResource(resource="order", id=str(order.id))

    async def save(self, order: Order) -> None:
        params = (
            order.status.value,
            order.updated_at,
            order.reserved_until,
            order.paid_at,
            order.fulfilled_at,
            order.canceled_at,
            order.cancel_reason,
            order.upstream_order_id,
            None if order.upstream_state is None else order.upstream_state.value,
            order.id,
        )
        if order.upstream_order_id is None:
            changed = await self._run(_SAVE_ORDER, params)
        else:
            # An UPDATE has no ON CONFLICT: run it in a savepoint, so an upstream id another
            # order holds raises DuplicateResource and leaves the transaction usable.
            with _translated(UPSTREAM_ORDER, order.upstream_order_id):
                async with self._conn.transaction():
                    changed = (await self._conn.execute(_SAVE_ORDER, params)).rowcount
        require_saved(changed, "order", order.id)

    async def get(self, order_id: OrderId, *, for_update: bool = False) -> Order | None:
        query = _ORDER_BY_ID_FOR_UPDATE if for_update else _ORDER_BY_ID
        row = await self._one(query, (order_id,))
        return None if row is None else _order_from_row(row)

    async def list_for_buyer(
        self, buyer_id: SubjectId, status: OrderStatus | None, page: PageRequest
    ) -> Page[Order]:
        before, limit = page.after or _MAX_UUID, page.limit + 1
        if status is None:
            rows = await self._all(_ORDERS_OF_BUYER, (buyer_id, before, limit))
        else:
            rows = await self._all(
                _ORDERS_OF_BUYER_IN_STATUS, (buyer_id, status.value, before, limit)
            )
        return _page([_order_from_row(r) for r in rows], page.limit, lambda x: x.id)

    async def list_for_seller(
        self, seller_id: SubjectId, which: SalesFilter, page: PageRequest
    ) -> Page[Order]:
        rows = await self._all(
            _ORDERS_OF_SELLER,
            {
                "seller": seller_id,
                "before": page.after or _MAX_UUID,
                "status": which.status.value if which.status else None,
                "g2a": None if which.channel is None else which.channel is Channel.G2A,
                "g2a_customer": G2A_CUSTOMER,
                "offer": which.offer_id,
                "since": which.since,
                "until": which.until,
                "limit": page.limit + 1,
            },
        )
        return _page([_order_from_row(r) for r in rows], page.limit, lambda x: x.id)

    async def lock_expired(self, now: datetime, limit: int) -> Sequence[Order]:
        if limit <= 0:
            return []
        rows = await self._all(_LOCK_EXPIRED_ORDERS, (now, limit))
        return [_order_from_row(r) for r in rows]

    async def find_by_upstream_id(
        self, upstream_order_id: str, *, for_update: bool = False
    ) -> Order | None:
        query = _ORDER_BY_UPSTREAM_ID_FOR_UPDATE if for_update else _ORDER_BY_UPSTREAM_ID
        row = await self._one(query, (upstream_order_id,))
        return None if row is None else _order_from_row(row)

    async def list_fulfilling(self, limit: int) -> Sequence[Order]:
        if limit <= 0:
            return []
        return [_order_from_row(r) for r in await self._all(_FULFILLING_ORDERS, (limit,))]


# ---------------------------------------------------------------------------------------
# Webhooks
# ---------------------------------------------------------------------------------------

# ON CONFLICT DO NOTHING: a concurrent insert of the same key waits for the first to
# commit and then inserts nothing, so exactly one caller sees a row written, nobody gets
# an error and every transaction stays usable.
_REMEMBER_NONCE: Final = """
INSERT INTO webhook_nonces (nonce, seen_at) VALUES (%s, %s)
ON CONFLICT (nonce) DO NOTHING
"""
_PRUNE_NONCES: Final = "DELETE FROM webhook_nonces WHERE seen_at < %s"
_INSERT_WEBHOOK_EVENT: Final = """
INSERT INTO webhook_events (
    event_id, type, upstream_order_id, occurred_at, received_at, outcome, payload
)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (event_id) DO NOTHING
"""
_WEBHOOK_EVENT_BY_ID: Final = """
SELECT event_id, type, upstream_order_id, occurred_at, received_at, outcome, payload
FROM webhook_events WHERE event_id = %s
"""


class PostgresWebhookRepository(_Sql, WebhookRepository):
    async def remember_nonce(self, nonce: str, seen_at: datetime) -> bool:
        return bool(await self._run(_REMEMBER_NONCE, (nonce, seen_at)))

    async def prune_nonces(self, seen_before: datetime) -> int:
        return await self._run(_PRUNE_NONCES, (seen_before,))

    async def add_event(self, event: WebhookEvent) -> bool:
        params = (
            event.event_id,
            event.type.value,
            event.upstream_order_id,
            event.occurred_at,
            event.received_at,
            event.outcome.value,
            event.payload,
        )
        return bool(await self._run(_INSERT_WEBHOOK_EVENT, params))

    async def get_event(self, event_id: str) -> WebhookEvent | None:
        row = await self._one(_WEBHOOK_EVENT_BY_ID, (event_id,))
        return None if row is None else _webhook_event_from_row(row)


# ---------------------------------------------------------------------------------------
# Outbound webhooks: endpoints and deliveries
# ---------------------------------------------------------------------------------------

_ENDPOINT_FIELDS: Final = (
    "id, seller_id, url, event_types, sealed_secret, status, created_at, failing_since, "
    "disabled_at, disabled_reason"
)
_INSERT_ENDPOINT: Final = f"""
INSERT INTO webhook_endpoints ({_ENDPOINT_FIELDS})
VALUES (%(id)s, %(seller_id)s, %(url)s, %(event_types)s, %(sealed_secret)s, %(status)s,
        %(created_at)s, %(failing_since)s, %(disabled_at)s, %(disabled_reason)s)
"""
_SAVE_ENDPOINT: Final = """
UPDATE webhook_endpoints SET status = %(status)s, failing_since = %(failing_since)s,
    disabled_at = %(disabled_at)s, disabled_reason = %(disabled_reason)s
WHERE id = %(id)s
"""
_ENDPOINT_BY_ID: Final = f"SELECT {_ENDPOINT_FIELDS} FROM webhook_endpoints WHERE id = %s"
_ENDPOINTS_OF_SELLER: Final = f"""
SELECT {_ENDPOINT_FIELDS} FROM webhook_endpoints WHERE seller_id = %s ORDER BY id
"""
_ENDPOINTS_SEALED_UNDER: Final = f"""
SELECT {_ENDPOINT_FIELDS} FROM webhook_endpoints
WHERE substring(sealed_secret FROM 2 FOR 4) = ANY(%s::bytea[])
ORDER BY id
"""
_RESEAL_ENDPOINT: Final = "UPDATE webhook_endpoints SET sealed_secret = %s WHERE id = %s"
_DELIVERY_FIELDS: Final = (
    "id, endpoint_id, seller_id, event_type, body, status, created_at, next_attempt_at, "
    "attempts, leased_until, last_attempt_at, last_status_code, last_error, delivered_at"
)
_INSERT_DELIVERY: Final = f"""
INSERT INTO webhook_deliveries ({_DELIVERY_FIELDS})
VALUES (%(id)s, %(endpoint_id)s, %(seller_id)s, %(event_type)s, %(body)s, %(status)s,
        %(created_at)s, %(next_attempt_at)s, %(attempts)s, %(leased_until)s,
        %(last_attempt_at)s, %(last_status_code)s, %(last_error)s, %(delivered_at)s)
"""
_SAVE_DELIVERY: Final = """
UPDATE webhook_deliveries SET status = %(status)s, next_attempt_at = %(next_attempt_at)s,
    attempts = %(attempts)s, leased_until = %(leased_until)s,
    last_attempt_at = %(last_attempt_at)s, last_status_code = %(last_status_code)s,
    last_error = %(last_error)s, delivered_at = %(delivered_at)s
WHERE id = %(id)s
"""
_DELIVERY_BY_ID: Final = f"SELECT {_DELIVERY_FIELDS} FROM webhook_deliveries WHERE id = %s"
# The same SKIP LOCKED discipline as key claims: of two dispatchers, each leases other rows.
_LEASE_DUE_DELIVERIES: Final = f"""
UPDATE webhook_deliveries SET leased_until = %(until)s
WHERE id IN (
    SELECT id FROM webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= %(now)s
        AND (leased_until IS NULL OR leased_until <= %(now)s)
    ORDER BY next_attempt_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING {_DELIVERY_FIELDS}
"""
_DELIVERIES_OF_ENDPOINT: Final = f"""
SELECT {_DELIVERY_FIELDS} FROM webhook_deliveries
WHERE endpoint_id = %s AND id < %s
ORDER BY id DESC LIMIT %s
"""


def _endpoint_from_row(row: TupleRow) -> WebhookEndpoint:
    f = dict(zip(_ENDPOINT_FIELDS.split(", "), row, strict=True))
    return WebhookEndpoint(
        id=EndpointId(f["id"]),
        seller_id=SubjectId(f["seller_id"]),
        url=f["url"],
        event_types=frozenset(OutboundEventType(t) for t in f["event_types"]),
        sealed_secret=bytes(f["sealed_secret"]),
        status=EndpointStatus(f["status"]),
        created_at=f["created_at"],
        failing_since=f["failing_since"],
        disabled_at=f["disabled_at"],
        disabled_reason=f["disabled_reason"],
    )


def _endpoint_params(e: WebhookEndpoint) -> dict[str, Any]:
    return {
        **attrs.asdict(e, recurse=False),
        "event_types": sorted(t.value for t in e.event_types),
        "status": e.status.value,
    }


def _delivery_from_row(row: TupleRow) -> Delivery:
    f = dict(zip(_DELIVERY_FIELDS.split(", "), row, strict=True))
    return Delivery(
        **{
            **f,
            "id": DeliveryId(f["id"]),
            "endpoint_id": EndpointId(f["endpoint_id"]),
            "seller_id": SubjectId(f["seller_id"]),
            "event_type": OutboundEventType(f["event_type"]),
            "status": DeliveryStatus(f["status"]),
        }
    )


def _delivery_params(d: Delivery) -> dict[str, Any]:
    return {
        **attrs.asdict(d, recurse=False),
        "event_type": d.event_type.value,
        "status": d.status.value,
    }


class PostgresEndpointRepository(_Sql, EndpointRepository):
    async def add(self, endpoint: WebhookEndpoint) -> None:
        await self._run(_INSERT_ENDPOINT, _endpoint_params(endpoint))

    async def get(self, endpoint_id: EndpointId) -> WebhookEndpoint | None:
        row = await self._one(_ENDPOINT_BY_ID, (endpoint_id,))
        return None if row is None else _endpoint_from_row(row)

    async def save(self, endpoint: WebhookEndpoint) -> None:
        changed = await self._run(_SAVE_ENDPOINT, _endpoint_params(endpoint))
        require_saved(changed, "webhook_endpoint", endpoint.id)

    async def list_for_seller(self, seller_id: SubjectId) -> Sequence[WebhookEndpoint]:
        return [_endpoint_from_row(r) for r in await self._all(_ENDPOINTS_OF_SELLER, (seller_id,))]

    async def sealed_under(
        self, master_key_ids: Collection[MasterKeyId]
    ) -> Sequence[WebhookEndpoint]:
        ids = [bytes.fromhex(i) for i in master_key_ids]
        return [_endpoint_from_row(r) for r in await self._all(_ENDPOINTS_SEALED_UNDER, (ids,))]

    async def reseal(self, endpoint_id: EndpointId, sealed_secret: bytes) -> None:
        changed = await self._run(_RESEAL_ENDPOINT, (sealed_secret, endpoint_id))
        require_saved(changed, "webhook_endpoint", endpoint_id)


class PostgresDeliveryRepository(_Sql, DeliveryRepository):
    async def add(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            with _translated():
                async with self._conn.cursor() as cur:
                    await cur.executemany(
                        _INSERT_DELIVERY, [_delivery_params(d) for d in deliveries]
                    )

    async def get(self, delivery_id: DeliveryId) -> Delivery | None:
        row = await self._one(_DELIVERY_BY_ID, (delivery_id,))
        return None if row is None else _delivery_from_row(row)

    async def save(self, delivery: Delivery) -> None:
        changed = await self._run(_SAVE_DELIVERY, _delivery_params(delivery))
        require_saved(changed, "delivery", delivery.id)

    async def lease_due(self, now: datetime, until: datetime, limit: int) -> Sequence[Delivery]:
        if limit <= 0:
            return []
        rows = await self._all(_LEASE_DUE_DELIVERIES, {"now": now, "until": until, "limit": limit})
        return sorted(map(_delivery_from_row, rows), key=lambda d: (d.next_attempt_at, d.id))

    async def list_for_endpoint(self, endpoint_id: EndpointId, page: PageRequest) -> Page[Delivery]:
        rows = await self._all(
            _DELIVERIES_OF_ENDPOINT, (endpoint_id, page.after or _MAX_UUID, page.limit + 1)
        )
        return _page([_delivery_from_row(r) for r in rows], page.limit, lambda d: d.id)


# ---------------------------------------------------------------------------------------
# Idempotency records
# ---------------------------------------------------------------------------------------

_IDEMPOTENCY_BY_KEY: Final = """
SELECT scope, key, fingerprint, state, created_at, locked_until, expires_at, response_status,
       response_body
FROM idempotency_records WHERE scope = %s AND key = %s
"""
_IDEMPOTENCY_BY_KEY_FOR_UPDATE: Final = """
SELECT scope, key, fingerprint, state, created_at, locked_until, expires_at, response_status,
       response_body
FROM idempotency_records WHERE scope = %s AND key = %s
FOR UPDATE
"""
_INSERT_IDEMPOTENCY: Final = """
INSERT INTO idempotency_records (
    scope, key, fingerprint, state, created_at, locked_until, expires_at, response_status,
    response_body
)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (scope, key) DO NOTHING
"""
_REPLACE_IDEMPOTENCY: Final = """
INSERT INTO idempotency_records (
    scope, key, fingerprint, state, created_at, locked_until, expires_at, response_status,
    response_body
)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (scope, key) DO UPDATE SET
    fingerprint = EXCLUDED.fingerprint,
    state = EXCLUDED.state,
    created_at = EXCLUDED.created_at,
    locked_until = EXCLUDED.locked_until,
    expires_at = EXCLUDED.expires_at,
    response_status = EXCLUDED.response_status,
    response_body = EXCLUDED.response_body
"""
# A claim is identified by its lease end: a take-over always writes a later one.
_COMPLETE_IDEMPOTENCY: Final = """
UPDATE idempotency_records
SET state = 'completed', response_status = %s, response_body = %s
WHERE scope = %s AND key = %s AND state = 'in_flight' AND locked_until = %s
"""
_RELEASE_IDEMPOTENCY: Final = """
DELETE FROM idempotency_records
WHERE scope = %s AND key = %s AND state = 'in_flight' AND locked_until = %s
"""
_PURGE_IDEMPOTENCY: Final = "DELETE FROM idempotency_records WHERE expires_at <= %s"


def _idempotency_params(record: IdempotencyRecord) -> tuple[Any, ...]:
    response = record.response
    return (
        record.scope,
        record.key,
        record.fingerprint,
        record.state.value,
        record.created_at,
        record.locked_until,
        record.expires_at,
        None if response is None else response.status,
        None if response is None else response.body,
    )


class PostgresIdempotencyRepository(_Sql, IdempotencyRepository):
    async def get(
        self, scope: str, key: str, *, for_update: bool = False
    ) -> IdempotencyRecord | None:
        query = _IDEMPOTENCY_BY_KEY_FOR_UPDATE if for_update else _IDEMPOTENCY_BY_KEY
        row = await self._one(query, (scope, key))
        return None if row is None else _idempotency_from_row(row)

    async def insert(self, record: IdempotencyRecord) -> bool:
        return bool(await self._run(_INSERT_IDEMPOTENCY, _idempotency_params(record)))

    async def replace(self, record: IdempotencyRecord) -> None:
        await self._run(_REPLACE_IDEMPOTENCY, _idempotency_params(record))

    async def complete(self, claim: IdempotencyRecord, response: StoredResponse) -> bool:
        held = (claim.scope, claim.key, claim.locked_until)
        return bool(await self._run(_COMPLETE_IDEMPOTENCY, (response.status, response.body, *held)))

    async def release(self, claim: IdempotencyRecord) -> None:
        await self._run(_RELEASE_IDEMPOTENCY, (claim.scope, claim.key, claim.locked_until))

    async def purge_expired(self, now: datetime) -> int:
        # is_live(now) is `now < expires_at`, so a record expiring exactly now is purged.
        return await self._run(_PURGE_IDEMPOTENCY, (now,))


# ---------------------------------------------------------------------------------------
# Audit log
# ---------------------------------------------------------------------------------------

# One statement for every event of an append, whatever their number: each event's key ids
# travel as one array literal, since a uuid[][] cannot be ragged.
_INSERT_EVENTS: Final = """
INSERT INTO audit_events (id, occurred_at, action, actor, pool_id, order_id, key_ids, details)
SELECT id, occurred_at, action, actor, pool_id, order_id, key_ids::uuid[], details
FROM unnest(
    %s::uuid[], %s::timestamptz[], %s::text[], %s::uuid[], %s::uuid[], %s::uuid[], %s::text[],
    %s::jsonb[]
) AS e(id, occurred_at, action, actor, pool_id, order_id, key_ids, details)
"""
_EVENTS: Final = """
SELECT id, occurred_at, action, actor, pool_id, order_id, key_ids, details
FROM audit_events
WHERE id > %s
ORDER BY id LIMIT %s
"""
_EVENTS_OF_POOL: Final = """
SELECT id, occurred_at, action, actor, pool_id, order_id, key_ids, details
FROM audit_events
WHERE pool_id = %s AND id > %s
ORDER BY id LIMIT %s
"""


class PostgresAuditLog(_Sql, AuditLog):
    async def append(self, events: Sequence[AuditEvent]) -> None:
        if not events:
            return
        columns = (
            [e.id for e in events],
            [e.occurred_at for e in events],
            [e.action.value for e in events],
            [e.actor for e in events],
            [e.pool_id for e in events],
            [e.order_id for e in events],
            ["{" + ",".join(str(k) for k in e.key_ids) + "}" for e in events],
            [Jsonb(dict(e.details)) for e in events],
        )
        with _translated("audit_event", str(events[0].id)):
            # Only queued inside a unit of work (ids are fresh UUIDv7s: nothing to wait for);
            # it travels with the next statement that needs an answer, or with COMMIT.
            await self._conn.execute(_INSERT_EVENTS, columns)

    async def list_events(self, pool_id: PoolId | None, page: PageRequest) -> Page[AuditEvent]:
        after, limit = page.after or _MIN_UUID, page.limit + 1
        if pool_id is None:
            rows = await self._all(_EVENTS, (after, limit))
        else:
            rows = await self._all(_EVENTS_OF_POOL, (pool_id, after, limit))
        return _page([_event_from_row(r) for r in rows], page.limit, lambda x: x.id)


# ---------------------------------------------------------------------------------------
# Unit of work, migrations and the store
# ---------------------------------------------------------------------------------------


def _unit_of_work(conn: Conn, pipeline: psycopg.AsyncPipeline | None) -> UnitOfWork:
    # Imported here: the merchant repository builds on this module's helpers.
    from autokey.adapters.postgres.merchant import PostgresMerchantRepository

    return UnitOfWork(
        tokens=PostgresTokenRepository(conn, pipeline),
        pools=PostgresPoolRepository(conn, pipeline),
        keys=PostgresKeyRepository(conn, pipeline),
        offers=PostgresOfferRepository(conn, pipeline),
        orders=PostgresOrderRepository(conn, pipeline),
        idempotency=PostgresIdempotencyRepository(conn, pipeline),
        audit=PostgresAuditLog(conn, pipeline),
        webhooks=PostgresWebhookRepository(conn, pipeline),
        endpoints=PostgresEndpointRepository(conn, pipeline),
        deliveries=PostgresDeliveryRepository(conn, pipeline),
        keyring=PostgresKeyringRepository(conn, pipeline),
        merchant=PostgresMerchantRepository(conn, pipeline),
    )


_BEGIN: Final = "BEGIN ISOLATION LEVEL READ COMMITTED"
_COMMIT: Final = "COMMIT"
_ROLLBACK: Final = "ROLLBACK"


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
            await conn.execute(_BEGIN, prepare=False)
            try:
                yield pipeline
            except BaseException:
                failed = True
                # The block's own exception is the one to raise; on a broken connection
                # the pool discards it when it comes back.
                with contextlib.suppress(psycopg.Error):
                    await conn.execute(_ROLLBACK, prepare=False)
                raise
            await conn.execute(_COMMIT, prepare=False)
    finally:
        if failed and conn.info.transaction_status in (
            TransactionStatus.INTRANS,
            TransactionStatus.INERROR,
        ):
            with contextlib.suppress(psycopg.Error):
                await conn.execute(_ROLLBACK, prepare=False)


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
_MIGRATION_LOCK: Final = 0x6175746F6B6579
_LOCK_MIGRATIONS: Final = "SELECT pg_advisory_xact_lock(%s)"
_CREATE_SCHEMA_MIGRATIONS: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
_APPLIED_VERSIONS: Final = "SELECT version FROM schema_migrations"
_RECORD_MIGRATION: Final = "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)"
_HAS_SCHEMA_MIGRATIONS: Final = "SELECT to_regclass('schema_migrations') IS NOT NULL"
_SCHEMA_VERSION: Final = "SELECT coalesce(max(version), 0) FROM schema_migrations"
_SET_UTC: Final = "SET TIME ZONE 'UTC'"
_SET_STATEMENT_TIMEOUT: Final = "SELECT set_config('statement_timeout', %s, false)"
# Migrations may legitimately run long (index builds): no statement timeout inside them.
_NO_STATEMENT_TIMEOUT: Final = "SET LOCAL statement_timeout = 0"
_PING: Final = "SELECT 1"


_KEEPALIVE_IDLE_S: Final = 10
_KEEPALIVE_INTERVAL_S: Final = 3
_KEEPALIVE_COUNT: Final = 3
_CLIENT_GRACE_S: Final = 1.0
"""How much longer than the server's statement_timeout the client waits for an answer."""


class _BoundedConnection(psycopg.AsyncConnection[TupleRow]):
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


async def _apply(conn: Conn, migration: Migration) -> bool:
    """Apply one migration unless recorded already; True if applied now."""
    # One transaction per file, holding a transaction-scoped advisory lock: a second
    # process waits, then sees the version recorded and skips it.
    async with conn.transaction():
        await conn.execute(_NO_STATEMENT_TIMEOUT)
        await conn.execute(_LOCK_MIGRATIONS, (_MIGRATION_LOCK,))
        await conn.execute(_CREATE_SCHEMA_MIGRATIONS)
        cur = await conn.execute(_APPLIED_VERSIONS)
        if migration.version in {r[0] for r in await cur.fetchall()}:
            return False
        # bytes: a file's text is not a LiteralString, and without parameters psycopg
        # sends it as-is (several statements allowed).
        await conn.execute(migration.sql.encode("utf-8"))
        await conn.execute(_RECORD_MIGRATION, (migration.version, migration.name))
    return True


@contextmanager
def _without_deadline(conn: Conn) -> Iterator[None]:
    """Let statements on `conn` run as long as they need (migrations), then restore."""
    if not isinstance(conn, _BoundedConnection):
        yield
        return
    saved, conn.deadline_s = conn.deadline_s, None
    try:
        yield
    finally:
        conn.deadline_s = saved


async def _configure(conn: Conn, *, statement_timeout_ms: int) -> None:
    # Timestamps come back in UTC whatever the server's or role's default zone is, and
    # every transaction is READ COMMITTED whatever default_transaction_isolation says
    # (sent with BEGIN, no extra round trip).
    if isinstance(conn, _BoundedConnection):
        conn.deadline_s = statement_timeout_ms / 1000 + _CLIENT_GRACE_S
    await conn.execute(_SET_UTC)
    await conn.execute(_SET_STATEMENT_TIMEOUT, (str(statement_timeout_ms),))
    await conn.set_isolation_level(psycopg.IsolationLevel.READ_COMMITTED)


class PostgresStore(Store):
    """The PostgreSQL database behind a connection pool."""

    name = STORE_NAME

    def __init__(self, pool: AsyncConnectionPool[Conn]) -> None:
        """Wrap an already opened pool whose connections are in autocommit mode."""
        self._pool = pool

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
            connection_class=_BoundedConnection,
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
        return cls(pool)

    def stage_keys(self) -> KeyStage:
        return PostgresKeyStage()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        # Autocommit connections + an explicit, pipelined BEGIN ... COMMIT; the pool gets
        # the connection back idle, and a broken one is discarded by the pool.
        try:
            async with self._pool.connection() as conn, _pipelined_transaction(conn) as pipe:
                yield _unit_of_work(conn, pipe)
        except psycopg.Error as exc:
            # Checkout, BEGIN or COMMIT failed (repositories translate their own errors).
            raise _classified(exc) from exc

    @asynccontextmanager
    async def bulk_transaction(self) -> AsyncIterator[UnitOfWork]:
        # COPY cannot run in pipeline mode: a classic transaction, a round trip a statement.
        # A COPY of 10^6 rows takes tens of seconds, so like a migration it runs without the
        # statement timeout; TCP keepalives and tcp_user_timeout still end a dead connection.
        try:
            async with self._pool.connection() as conn:
                with _without_deadline(conn):
                    async with conn.transaction():
                        await conn.execute(_NO_STATEMENT_TIMEOUT)
                        yield _unit_of_work(conn, None)
        except psycopg.Error as exc:
            raise _classified(exc) from exc

    async def ping(self) -> None:
        try:
            async with self._pool.connection() as conn:
                await conn.execute(_PING)
        except psycopg.Error as exc:
            raise StoreUnavailable(store=STORE_NAME) from exc

    @property
    def shipped_schema_version(self) -> int:
        return max(m.version for m in load_migrations())

    async def schema_version(self) -> int:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(_HAS_SCHEMA_MIGRATIONS)
                exists = await cur.fetchone()
                if not (exists and exists[0]):
                    return 0
                cur = await conn.execute(_SCHEMA_VERSION)
                row = await cur.fetchone()
                return 0 if row is None else int(row[0])
        except psycopg.Error as exc:
            raise StoreUnavailable(store=STORE_NAME) from exc

    async def migrate(self) -> Sequence[int]:
        applied_now: list[int] = []
        try:
            async with self._pool.connection() as conn:
                for migration in load_migrations():
                    with _without_deadline(conn):
                        if await _apply(conn, migration):
                            applied_now.append(migration.version)
        except psycopg.Error as exc:
            raise StoreUnavailable(store=STORE_NAME) from exc
        return applied_now

    async def close(self) -> None:
        await self._pool.close()
