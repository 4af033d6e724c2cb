"""Every SQL statement of the PostgreSQL adapter, as named constants with bound parameters.

psycopg prepares a statement server-side after a few executions, keyed by its text, so each
query is one stable string, built once at import. Enum values written into a statement are
literals rather than parameters where a partial index must match them; they come from the
domain enums through `sql_literals`, and each statement that changes a key's status is built
from the model transition it performs and named after it (`KEY_RESERVE`).
"""

from __future__ import annotations

from functools import cache

from autokey.adapters.sql_literals import literal
from autokey.domain.model.idempotency import IdempotencyState
from autokey.domain.model.keys import KeyStatus, KeyTransition
from autokey.domain.model.merchant import ReservationState
from autokey.domain.model.offers import DeliveryType, OfferStatus
from autokey.domain.model.orders import OrderStatus
from autokey.domain.model.outbound import DeliveryStatus


def _seller_page(columns: str, table: str, *, by: str = "id") -> str:
    """One keyset page of a seller's rows, ascending by `by`: parameters seller, after, limit."""
    return f"""
SELECT {columns} FROM {table}
WHERE seller_id = %s AND {by} > %s
ORDER BY {by} LIMIT %s
"""


def _same_as_copy(columns: str) -> str:
    """A row's `columns` (but its id) equal to the named parameters of the same names."""
    names = [name.strip() for name in columns.split(",") if name.strip() != "id"]
    mine = ", ".join(names)
    copy = ", ".join(f"%({name})s" for name in names)
    return f"ROW({mine}) IS NOT DISTINCT FROM ROW({copy})"


@cache
def locked(query: str) -> str:
    """`query` taking a row lock on what it reads (`SELECT … FOR UPDATE`); one text per query,
    so the locked form is prepared once like the plain one."""
    return query + "FOR UPDATE\n"


# --- Connection, transactions and migrations ----------------------------------------------

BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED"
COMMIT = "COMMIT"
ROLLBACK = "ROLLBACK"
CREATE_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
APPLIED_VERSIONS = "SELECT version FROM schema_migrations"
RECORD_MIGRATION = "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)"
HAS_SCHEMA_MIGRATIONS = "SELECT to_regclass('schema_migrations') IS NOT NULL"
SCHEMA_VERSION = "SELECT coalesce(max(version), 0) FROM schema_migrations"
# A connection's session (ADR 0039 for jit): one round trip when the pool opens it.
SESSION_SETTINGS = """
SELECT set_config('TimeZone', 'UTC', false), set_config('jit', 'off', false),
    set_config('statement_timeout', %s, false)
"""
# Migrations may legitimately run long (index builds): no statement timeout inside them.
NO_STATEMENT_TIMEOUT = "SET LOCAL statement_timeout = 0"
PING = "SELECT 1"

# --- Tokens --------------------------------------------------------------------------------

INSERT_TOKEN = """
INSERT INTO api_tokens (id, subject, role, name, secret_hash, created_at, revoked_at)
VALUES (%(id)s, %(subject)s, %(role)s, %(name)s, %(secret_hash)s, %(created_at)s,
        %(revoked_at)s)
ON CONFLICT DO NOTHING
"""
REVOKE_TOKEN = """
UPDATE api_tokens SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL
"""
TOKEN_COLUMNS = "id, subject, role, name, secret_hash, created_at, revoked_at, last_used_at"
TOKEN_BY_HASH = f"""
SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE secret_hash = %s
"""
TOKENS_ALL = f"SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id"
RECORD_TOKEN_USE = """
UPDATE api_tokens t SET last_used_at = u.at
FROM unnest(%s::uuid[], %s::timestamptz[]) AS u(id, at)
WHERE t.id = u.id AND (t.last_used_at IS NULL OR t.last_used_at < u.at)
"""

# --- Pools ---------------------------------------------------------------------------------

INSERT_POOL = """
INSERT INTO key_pools (id, seller_id, name, created_at)
VALUES (%(id)s, %(seller_id)s, %(name)s, %(created_at)s)
ON CONFLICT DO NOTHING
"""
POOL_BY_ID = "SELECT id, seller_id, name, created_at FROM key_pools WHERE id = %s"
POOLS_OF_SELLER = _seller_page("id, seller_id, name, created_at", "key_pools")
# Counts are the folded totals plus the deltas appended since (migration 0007's triggers).
POOL_COUNTS = """
SELECT status, sum(n)::bigint FROM (
    SELECT status, n FROM key_counts WHERE pool_id = %(pool)s
    UNION ALL
    SELECT status, delta FROM key_count_deltas WHERE pool_id = %(pool)s
) AS c
GROUP BY status
"""
AVAILABLE_COUNTS = f"""
SELECT pool_id, sum(n)::bigint FROM (
    SELECT pool_id, n FROM key_counts
    WHERE pool_id = ANY(%(pools)s) AND status = {literal(KeyStatus.AVAILABLE)}
    UNION ALL
    SELECT pool_id, delta FROM key_count_deltas
    WHERE pool_id = ANY(%(pools)s) AND status = {literal(KeyStatus.AVAILABLE)}
) AS c
GROUP BY pool_id
"""
# One statement: concurrent folders each move only deltas they deleted, and upsert in one
# order, so they never deadlock; claims never touch key_counts.
FOLD_COUNTS = """
WITH folded AS (
    DELETE FROM key_count_deltas RETURNING pool_id, status, delta
)
INSERT INTO key_counts (pool_id, status, n)
SELECT pool_id, status, sum(delta) FROM folded
GROUP BY pool_id, status
ORDER BY pool_id, status
ON CONFLICT (pool_id, status) DO UPDATE SET n = key_counts.n + EXCLUDED.n
"""

# --- Keys ----------------------------------------------------------------------------------

# One round trip per batch, however large: the batch travels as six arrays, in binary
# (%b) because text-dumping 10,000 ids and ciphertexts costs as much as the insert itself.
INSERT_KEYS = """
INSERT INTO keys (id, pool_id, status, sealed, fingerprint, created_at)
SELECT * FROM unnest(
    %b::uuid[], %b::uuid[], %b::text[], %b::bytea[], %b::bytea[], %b::timestamptz[]
)
ON CONFLICT (fingerprint) DO NOTHING
RETURNING id
"""
KEY_COLUMNS = (
    "id, pool_id, status, sealed, fingerprint, created_at, order_id, reserved_at, delivered_at"
)
KEY_BY_ID = f"""
SELECT {KEY_COLUMNS}
FROM keys WHERE id = %s
"""
KEY_BY_FINGERPRINT = f"""
SELECT {KEY_COLUMNS}
FROM keys WHERE fingerprint = %s
"""
SAVE_KEY = """
UPDATE keys SET status = %(status)s, order_id = %(order_id)s,
    reserved_at = %(reserved_at)s, delivered_at = %(delivered_at)s
WHERE id = %(id)s
"""
KEYS_OF_POOL_IN_STATUS = f"""
SELECT {KEY_COLUMNS}
FROM keys
WHERE pool_id = %s AND status = %s AND id > %s
ORDER BY id LIMIT %s
"""
# Any status: one (pool_id, status, id) index range per status, each stopping at the page
# size, then the few rows they yield sorted; never a sort of the whole pool, so a page costs
# the same on a pool of ten keys or ten million (keys_pool_status_id_idx is not partial, so a
# status taken from the VALUES list uses it as a literal would).
_EVERY_KEY_STATUS = ", ".join(f"({literal(status)})" for status in sorted(KeyStatus))
KEYS_OF_POOL = f"""
SELECT k.* FROM (VALUES {_EVERY_KEY_STATUS}) AS s(status)
CROSS JOIN LATERAL (
    SELECT {KEY_COLUMNS}
    FROM keys WHERE pool_id = %(pool)s AND status = s.status AND id > %(after)s
    ORDER BY id LIMIT %(limit)s
) AS k
ORDER BY id LIMIT %(limit)s
"""


_FROM_CLAIM_MARK = """
        AND created_at >= coalesce(
            (SELECT created_at FROM key_claim_marks WHERE pool_id = %s), '-infinity'
        )"""


def _key_reserve(*, from_mark: bool, limit: str = "%s") -> str:
    """The RESERVE transition of up to N keys of a pool, oldest first; `from_mark` starts the
    index range at the pool's claim mark (one more parameter, the pool id again); `limit` is
    N's parameter, or N itself."""
    mark = _FROM_CLAIM_MARK if from_mark else ""
    return f"""
UPDATE keys SET status = {literal(KeyTransition.RESERVE.target)}, order_id = %s, reserved_at = %s
WHERE id IN (
    SELECT id FROM keys
    WHERE pool_id = %s AND status = {literal(KeyTransition.RESERVE.source)}{mark}
    ORDER BY created_at, id
    LIMIT {limit}
    FOR UPDATE SKIP LOCKED
)
RETURNING id
"""


# Oldest first by (created_at, id), which only the keys_claim_order index provides (0003).
KEY_RESERVE = _key_reserve(from_mark=False)
# The same claim from the pool's mark on (migration 0007): the index range starts at the
# oldest key housekeeping found AVAILABLE, past the dead entries of the keys claimed before.
KEY_RESERVE_FROM_MARK = _key_reserve(from_mark=True)
# One key, the usual order, with its LIMIT in the text: PostgreSQL then settles on a cached
# generic plan after five executions. With a LIMIT parameter the generic plan is costed for a
# tenth of the pool, so every claim was planned afresh (0.35 ms of its 0.7 ms on a 2-vCPU VM).
KEY_RESERVE_ONE_FROM_MARK = _key_reserve(from_mark=True, limit="1")
# Every pool with an AVAILABLE key gets its mark set to the oldest one (lowering too, which
# frees keys a concurrent release made AVAILABLE below a mark this statement raised). Marks
# another transaction holds (a release lowering them) are skipped until the next run, so
# housekeeping never waits on, nor deadlocks with, a sweeper releasing keys of many pools.
ADVANCE_CLAIM_MARKS = f"""
WITH oldest AS (
    SELECT p.id AS pool_id, k.created_at
    FROM key_pools p
    CROSS JOIN LATERAL (
        SELECT created_at FROM keys
        WHERE pool_id = p.id AND status = {literal(KeyStatus.AVAILABLE)}
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
COUNT_AVAILABLE = (
    f"SELECT count(*) FROM keys WHERE pool_id = %s AND status = {literal(KeyStatus.AVAILABLE)}"
)
KEYS_OF_ORDER = f"""
SELECT {KEY_COLUMNS}
FROM keys WHERE order_id = %s
ORDER BY id
"""
DELIVERED_TO = f"""
SELECT order_id, id FROM keys
WHERE order_id = ANY(%s) AND status = {literal(KeyStatus.DELIVERED)}
ORDER BY order_id, id
"""
KEY_RELEASE_OF_ORDER = f"""
UPDATE keys
SET status = {literal(KeyTransition.RELEASE.target)}, order_id = NULL, reserved_at = NULL
WHERE order_id = %s AND status = {literal(KeyTransition.RELEASE.source)}
RETURNING id
"""
KEY_DELIVER_OF_ORDER = f"""
UPDATE keys SET status = {literal(KeyTransition.DELIVER.target)}, delivered_at = %s
WHERE order_id = %s AND status = {literal(KeyTransition.DELIVER.source)}
RETURNING {KEY_COLUMNS}
"""
# Group commit: the claims of several orders, of any pools, in one statement. The orders of a
# pool, in batch order, want the key ranges (after, upto] of that pool's keys locked oldest
# first; the prefix of them whose range was locked in full is served, the rest claim nothing.
KEYS_RESERVE_FOR_ORDERS = f"""
WITH wanted AS (
    SELECT order_id, pool_id, upto - quantity AS after, upto
    FROM (
        SELECT order_id, pool_id, quantity,
            sum(quantity) OVER (PARTITION BY pool_id ORDER BY n) AS upto
        FROM unnest(%(orders)s::uuid[], %(pools)s::uuid[], %(quantities)s::integer[])
            WITH ORDINALITY AS w(order_id, pool_id, quantity, n)
    ) AS w
),
picked AS (
    SELECT free.id, t.pool_id,
        row_number() OVER (PARTITION BY t.pool_id ORDER BY free.created_at, free.id) AS n
    FROM (SELECT pool_id, max(upto) AS total FROM wanted GROUP BY pool_id) AS t
    CROSS JOIN LATERAL (
        SELECT id, created_at FROM keys
        WHERE pool_id = t.pool_id AND status = {literal(KeyTransition.RESERVE.source)}
            AND created_at >= coalesce(
                (SELECT created_at FROM key_claim_marks AS m WHERE m.pool_id = t.pool_id),
                '-infinity'
            )
        ORDER BY created_at, id
        LIMIT t.total
        FOR UPDATE SKIP LOCKED
    ) AS free
),
served AS (
    SELECT p.id, w.order_id FROM picked AS p
    JOIN wanted AS w ON w.pool_id = p.pool_id AND p.n > w.after AND p.n <= w.upto
    WHERE w.upto <= (SELECT count(*) FROM picked AS q WHERE q.pool_id = w.pool_id)
)
UPDATE keys AS k
SET status = {literal(KeyTransition.RESERVE.target)}, order_id = s.order_id,
    reserved_at = %(now)s
FROM served AS s WHERE k.id = s.id
RETURNING k.order_id, k.id
"""
KEYS_DELIVER_OF_ORDERS = f"""
UPDATE keys SET status = {literal(KeyTransition.DELIVER.target)}, delivered_at = %s
WHERE order_id = ANY(%s::uuid[]) AND status = {literal(KeyTransition.DELIVER.source)}
RETURNING {KEY_COLUMNS}
"""
ADVISORY_XACT_LOCK = "SELECT pg_advisory_xact_lock(%s)"
COPY_KEYS = """
COPY keys (id, pool_id, status, sealed, fingerprint, created_at) FROM STDIN (FORMAT BINARY)
"""
CREATE_UPLOAD_STAGE = """
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
COPY_UPLOAD_STAGE = """
COPY upload_stage (id, pool_id, status, sealed, fingerprint, created_at)
FROM STDIN (FORMAT BINARY)
"""
MERGE_UPLOAD_STAGE = """
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

# --- Keyring (ADR 0011) ----------------------------------------------------------------------
# Bytes 2-5 of a sealed value name its master key (keys_sealed_with, migration 0004).

# A loose index scan: one probe of keys_sealed_with per distinct master key id.
MASTER_KEY_IDS = """
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
INDEX_KEY = "SELECT key_id, sealed FROM index_key"
PIN_INDEX_KEY = """
INSERT INTO index_key (singleton, key_id, sealed) VALUES (1, %(key_id)s, %(sealed)s)
ON CONFLICT (singleton) DO NOTHING
"""
RESEAL_INDEX_KEY = "UPDATE index_key SET sealed = %s"
KEYS_SEALED_UNDER = f"""
SELECT {KEY_COLUMNS}
FROM keys
WHERE id > %s AND substring(sealed FROM 2 FOR 4) = ANY(%s::bytea[])
ORDER BY id LIMIT %s
FOR UPDATE SKIP LOCKED
"""
RESEAL_KEY = "UPDATE keys SET sealed = %s WHERE id = %s"

# --- Offers --------------------------------------------------------------------------------

OFFER_COLUMNS = """
id, seller_id, title, price_amount, price_currency, delivery_type, key_pool_id, status,
created_at, updated_at, g2a_product_id, max_price_amount, max_price_currency,
low_stock_threshold, stock_level
"""
INSERT_OFFER = f"""
INSERT INTO offers ({OFFER_COLUMNS})
VALUES (%(id)s, %(seller_id)s, %(title)s, %(price_amount)s, %(price_currency)s,
        %(delivery_type)s, %(key_pool_id)s, %(status)s, %(created_at)s, %(updated_at)s,
        %(g2a_product_id)s, %(max_price_amount)s, %(max_price_currency)s,
        %(low_stock_threshold)s, %(stock_level)s)
ON CONFLICT DO NOTHING
"""
SAVE_OFFER = """
UPDATE offers SET title = %(title)s, price_amount = %(price_amount)s,
    price_currency = %(price_currency)s, delivery_type = %(delivery_type)s,
    key_pool_id = %(key_pool_id)s, status = %(status)s, updated_at = %(updated_at)s,
    g2a_product_id = %(g2a_product_id)s, max_price_amount = %(max_price_amount)s,
    max_price_currency = %(max_price_currency)s,
    low_stock_threshold = %(low_stock_threshold)s, stock_level = %(stock_level)s
WHERE id = %(id)s
"""
OFFER_BY_ID = f"SELECT {OFFER_COLUMNS} FROM offers WHERE id = %s"
# An offer read answered from its copy (ADR 0040): the row must still hold every value of
# the copy, or the transaction fails (autokey_stale, migration 0015). Unlocked, as the read.
CHECK_OFFER_COPY = f"""
SELECT autokey_stale('offer', %(id)s::uuid) WHERE NOT EXISTS (
    SELECT FROM offers WHERE id = %(id)s AND {_same_as_copy(OFFER_COLUMNS)}
)
"""
OFFERS_BY_IDS = f"SELECT {OFFER_COLUMNS} FROM offers WHERE id = ANY(%s::uuid[])"
OFFERS_OF_SELLER = _seller_page(OFFER_COLUMNS, "offers")
# NO KEY UPDATE: sweeps exclude each other, but an order inserted meanwhile (its foreign key
# takes KEY SHARE on the offer) never waits for a sweep.
OFFERS_STOCKED = f"""
SELECT {OFFER_COLUMNS} FROM offers
WHERE status = {literal(OfferStatus.ACTIVE)} AND delivery_type = {literal(DeliveryType.AUTO_KEY)}
    AND (%(pool)s::uuid IS NULL OR key_pool_id = %(pool)s) AND id > %(after)s
ORDER BY id LIMIT %(limit)s
FOR NO KEY UPDATE SKIP LOCKED
"""

# --- Orders --------------------------------------------------------------------------------

INSERT_ORDER = """
INSERT INTO orders (
    id, buyer_id, seller_id, offer_id, pool_id, delivery_type, quantity, unit_price_amount,
    unit_price_currency, status, created_at, updated_at, reserved_until, paid_at,
    fulfilled_at, canceled_at, cancel_reason, upstream_order_id, upstream_state
)
VALUES (%(id)s, %(buyer_id)s, %(seller_id)s, %(offer_id)s, %(pool_id)s, %(delivery_type)s,
        %(quantity)s,
        %(unit_price_amount)s, %(unit_price_currency)s, %(status)s, %(created_at)s,
        %(updated_at)s, %(reserved_until)s, %(paid_at)s, %(fulfilled_at)s, %(canceled_at)s,
        %(cancel_reason)s, %(upstream_order_id)s, %(upstream_state)s)
ON CONFLICT DO NOTHING
"""
SAVE_ORDER = """
UPDATE orders SET status = %(status)s, updated_at = %(updated_at)s,
    reserved_until = %(reserved_until)s, paid_at = %(paid_at)s,
    fulfilled_at = %(fulfilled_at)s, canceled_at = %(canceled_at)s,
    cancel_reason = %(cancel_reason)s, upstream_order_id = %(upstream_order_id)s,
    upstream_state = %(upstream_state)s
WHERE id = %(id)s
"""
ORDER_COLUMNS = """
id, buyer_id, seller_id, offer_id, pool_id, delivery_type, quantity, unit_price_amount,
    unit_price_currency, status, created_at, updated_at, reserved_until, paid_at, fulfilled_at,
    canceled_at, cancel_reason, upstream_order_id, upstream_state
"""
ORDER_BY_ID = f"""
SELECT {ORDER_COLUMNS}
FROM orders WHERE id = %s
"""
# A locked order read answered from its copy (ADR 0040): locks the row if it still holds
# every value of the copy, and fails the transaction otherwise (autokey_stale).
LOCK_ORDER_COPY = f"""
WITH locked AS (
    SELECT FROM orders WHERE id = %(id)s AND {_same_as_copy(ORDER_COLUMNS)} FOR UPDATE
)
SELECT autokey_stale('order', CASE WHEN EXISTS (SELECT FROM locked) THEN NULL
                                  ELSE %(id)s::uuid END)
"""
ORDERS_BY_IDS = f"""
SELECT {ORDER_COLUMNS}
FROM orders WHERE id = ANY(%s::uuid[])
ORDER BY id
"""
# Group commit: the orders of a batch as one JSON array of their columns (as INSERT_EVENTS).
_ORDER_RECORD = """
    id uuid, buyer_id uuid, seller_id uuid, offer_id uuid, pool_id uuid, delivery_type text,
    quantity integer,
    unit_price_amount numeric, unit_price_currency text, status text, created_at timestamptz,
    updated_at timestamptz, reserved_until timestamptz, paid_at timestamptz,
    fulfilled_at timestamptz, canceled_at timestamptz, cancel_reason text,
    upstream_order_id text, upstream_state text
"""
INSERT_ORDERS = f"""
INSERT INTO orders ({ORDER_COLUMNS})
SELECT {ORDER_COLUMNS} FROM jsonb_to_recordset(%s::jsonb) AS o({_ORDER_RECORD})
"""
# Every field `SAVE_ORDER` writes but the upstream ones. It raises NotFound for the first
# order it did not find (autokey_not_found, migration 0014) instead of answering which it
# saved, so it travels without a round trip of its own. The planner guesses 100 rows for any
# `jsonb_to_recordset`, and for a table of up to some 30,000 rows would rather hash-join them
# against a scan of the whole table (5 ms at 15,000 orders); `id = ANY(ARRAY(...))` has it
# fetch just the batch's rows by primary key, at any size.
SAVE_ORDERS = f"""
WITH v AS MATERIALIZED (SELECT * FROM jsonb_to_recordset(%s::jsonb) AS v({_ORDER_RECORD})),
saved AS (
    UPDATE orders AS o SET status = v.status, updated_at = v.updated_at,
        reserved_until = v.reserved_until, paid_at = v.paid_at, fulfilled_at = v.fulfilled_at,
        canceled_at = v.canceled_at, cancel_reason = v.cancel_reason
    FROM v WHERE o.id = ANY(ARRAY(SELECT id FROM v)) AND o.id = v.id
    RETURNING o.id
)
SELECT autokey_not_found('order', (
    SELECT v.id FROM v WHERE NOT EXISTS (SELECT 1 FROM saved WHERE saved.id = v.id)
    ORDER BY v.id LIMIT 1
))
"""
# `SAVE_ORDERS` for a lone call's one order: by primary key, where the batch statement's
# generic plan hash-joined its one row against a scan of a table that was small when it was
# planned (200 µs per pay or fulfill at 3,000 orders, docs/benchmarks.md).
SAVE_ONE_ORDER = """
WITH saved AS (
    UPDATE orders SET status = %(status)s, updated_at = %(updated_at)s,
        reserved_until = %(reserved_until)s, paid_at = %(paid_at)s,
        fulfilled_at = %(fulfilled_at)s, canceled_at = %(canceled_at)s,
        cancel_reason = %(cancel_reason)s
    WHERE id = %(id)s
    RETURNING id
)
SELECT autokey_not_found('order', CASE WHEN EXISTS (SELECT FROM saved) THEN NULL
                                      ELSE %(id)s::uuid END)
"""
# Walks orders_buyer_id_idx; a status, when given, filters the rows it walks.
ORDERS_OF_BUYER = f"""
SELECT {ORDER_COLUMNS}
FROM orders
WHERE buyer_id = %(buyer)s AND id < %(before)s
    AND (%(status)s::text IS NULL OR status = %(status)s)
ORDER BY id DESC LIMIT %(limit)s
"""
ORDERS_OF_SELLER = f"""
SELECT {ORDER_COLUMNS}
FROM orders
WHERE seller_id = %(seller)s AND id < %(before)s
    AND (%(g2a)s::boolean IS NULL OR (buyer_id = %(g2a_customer)s) = %(g2a)s)
    AND (%(status)s::text IS NULL OR status = %(status)s)
    AND (%(offer)s::uuid IS NULL OR offer_id = %(offer)s)
    AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)
    AND (%(until)s::timestamptz IS NULL OR created_at < %(until)s)
ORDER BY id DESC LIMIT %(limit)s
"""
LOCK_EXPIRED_ORDERS = f"""
SELECT {ORDER_COLUMNS}
FROM orders
WHERE status = {literal(OrderStatus.PENDING)} AND reserved_until <= %s
ORDER BY reserved_until, id
LIMIT %s
FOR UPDATE SKIP LOCKED
"""
ORDER_BY_UPSTREAM_ID = f"""
SELECT {ORDER_COLUMNS}
FROM orders WHERE upstream_order_id = %s
"""
# Walks orders_fulfilling_updated_at_idx; id breaks ties so the order is stable.
FULFILLING_ORDERS = f"""
SELECT {ORDER_COLUMNS}
FROM orders
WHERE status = {literal(OrderStatus.FULFILLING)}
ORDER BY updated_at, id
LIMIT %s
"""
ORDER_EXISTS = "SELECT 1 FROM orders WHERE id = %s"

# --- Webhooks ------------------------------------------------------------------------------

# ON CONFLICT DO NOTHING: a concurrent insert of the same key waits for the first to
# commit and then inserts nothing, so exactly one caller sees a row written, nobody gets
# an error and every transaction stays usable.
REMEMBER_NONCE = """
INSERT INTO webhook_nonces (nonce, seen_at) VALUES (%s, %s)
ON CONFLICT (nonce) DO NOTHING
"""
PRUNE_NONCES = "DELETE FROM webhook_nonces WHERE seen_at < %s"
INSERT_WEBHOOK_EVENT = """
INSERT INTO webhook_events (
    event_id, type, upstream_order_id, occurred_at, received_at, outcome, payload
)
VALUES (%(event_id)s, %(type)s, %(upstream_order_id)s, %(occurred_at)s, %(received_at)s,
        %(outcome)s, %(payload)s)
ON CONFLICT (event_id) DO NOTHING
"""
WEBHOOK_EVENT_BY_ID = """
SELECT event_id, type, upstream_order_id, occurred_at, received_at, outcome, payload
FROM webhook_events WHERE event_id = %s
"""

# --- Outbound webhooks: endpoints and deliveries -------------------------------------------

ENDPOINT_FIELDS = (
    "id, seller_id, url, event_types, sealed_secret, status, created_at, failing_since, "
    "disabled_at, disabled_reason"
)
INSERT_ENDPOINT = f"""
INSERT INTO webhook_endpoints ({ENDPOINT_FIELDS})
VALUES (%(id)s, %(seller_id)s, %(url)s, %(event_types)s, %(sealed_secret)s, %(status)s,
        %(created_at)s, %(failing_since)s, %(disabled_at)s, %(disabled_reason)s)
"""
SAVE_ENDPOINT = """
UPDATE webhook_endpoints SET status = %(status)s, failing_since = %(failing_since)s,
    disabled_at = %(disabled_at)s, disabled_reason = %(disabled_reason)s
WHERE id = %(id)s
"""
ENDPOINT_BY_ID = f"SELECT {ENDPOINT_FIELDS} FROM webhook_endpoints WHERE id = %s"
ENDPOINTS_OF_SELLERS = f"""
SELECT {ENDPOINT_FIELDS} FROM webhook_endpoints WHERE seller_id = ANY(%s::uuid[]) ORDER BY id
"""
# A lone fulfill's one seller. Against a table never analysed, PostgreSQL costs the generic
# plan of `ANY(array)` for ten sellers, above the custom plan for one, and planned the
# statement again on every call (29 µs of each fulfill).
ENDPOINTS_OF_SELLER = f"""
SELECT {ENDPOINT_FIELDS} FROM webhook_endpoints WHERE seller_id = %s ORDER BY id
"""
ENDPOINTS_SEALED_UNDER = f"""
SELECT {ENDPOINT_FIELDS} FROM webhook_endpoints
WHERE substring(sealed_secret FROM 2 FOR 4) = ANY(%s::bytea[])
ORDER BY id
"""
RESEAL_ENDPOINT = "UPDATE webhook_endpoints SET sealed_secret = %s WHERE id = %s"
DELIVERY_FIELDS = (
    "id, endpoint_id, seller_id, event_type, body, status, created_at, next_attempt_at, "
    "attempts, leased_until, last_attempt_at, last_status_code, last_error, delivered_at"
)
INSERT_DELIVERY = f"""
INSERT INTO webhook_deliveries ({DELIVERY_FIELDS})
VALUES (%(id)s, %(endpoint_id)s, %(seller_id)s, %(event_type)s, %(body)s, %(status)s,
        %(created_at)s, %(next_attempt_at)s, %(attempts)s, %(leased_until)s,
        %(last_attempt_at)s, %(last_status_code)s, %(last_error)s, %(delivered_at)s)
"""
SAVE_DELIVERY = """
UPDATE webhook_deliveries SET status = %(status)s, next_attempt_at = %(next_attempt_at)s,
    attempts = %(attempts)s, leased_until = %(leased_until)s,
    last_attempt_at = %(last_attempt_at)s, last_status_code = %(last_status_code)s,
    last_error = %(last_error)s, delivered_at = %(delivered_at)s
WHERE id = %(id)s
"""
DELIVERY_BY_ID = f"SELECT {DELIVERY_FIELDS} FROM webhook_deliveries WHERE id = %s"
# The same SKIP LOCKED discipline as key claims: of two dispatchers, each leases other rows.
LEASE_DUE_DELIVERIES = f"""
UPDATE webhook_deliveries SET leased_until = %(until)s
WHERE id IN (
    SELECT id FROM webhook_deliveries
    WHERE status = {literal(DeliveryStatus.PENDING)} AND next_attempt_at <= %(now)s
        AND (leased_until IS NULL OR leased_until <= %(now)s)
    ORDER BY next_attempt_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING {DELIVERY_FIELDS}
"""
DELIVERIES_OF_ENDPOINT = f"""
SELECT {DELIVERY_FIELDS} FROM webhook_deliveries
WHERE endpoint_id = %s AND id < %s
ORDER BY id DESC LIMIT %s
"""

# --- Idempotency records -------------------------------------------------------------------

IDEMPOTENCY_BY_KEY = """
SELECT scope, key, fingerprint, state, created_at, locked_until, expires_at, response_status,
       response_body
FROM idempotency_records WHERE scope = %s AND key = %s
"""
INSERT_IDEMPOTENCY = """
INSERT INTO idempotency_records (
    scope, key, fingerprint, state, created_at, locked_until, expires_at, response_status,
    response_body
)
VALUES (%(scope)s, %(key)s, %(fingerprint)s, %(state)s, %(created_at)s, %(locked_until)s,
        %(expires_at)s, %(response_status)s, %(response_body)s)
ON CONFLICT (scope, key) DO NOTHING
"""
REPLACE_IDEMPOTENCY = """
INSERT INTO idempotency_records (
    scope, key, fingerprint, state, created_at, locked_until, expires_at, response_status,
    response_body
)
VALUES (%(scope)s, %(key)s, %(fingerprint)s, %(state)s, %(created_at)s, %(locked_until)s,
        %(expires_at)s, %(response_status)s, %(response_body)s)
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
COMPLETE_IDEMPOTENCY = f"""
UPDATE idempotency_records
SET state = {literal(IdempotencyState.COMPLETED)}, response_status = %s, response_body = %s
WHERE scope = %s AND key = %s AND state = {literal(IdempotencyState.IN_FLIGHT)}
    AND locked_until = %s
"""
RELEASE_IDEMPOTENCY = f"""
DELETE FROM idempotency_records
WHERE scope = %s AND key = %s AND state = {literal(IdempotencyState.IN_FLIGHT)}
    AND locked_until = %s
"""
PURGE_IDEMPOTENCY = "DELETE FROM idempotency_records WHERE expires_at <= %s"

# --- Audit log -----------------------------------------------------------------------------

# One statement for every event of an append, the events as one JSON array: the statement
# text and its one parameter are the same for any number of events, so psycopg converts it
# once and PostgreSQL prepares it once, where a VALUES row per event (or an unnest array per
# column) cost the client several times more CPU in a batch of thirty (benchmarks §0000).
INSERT_EVENTS = """
INSERT INTO audit_events (id, occurred_at, action, actor, pool_id, order_id, key_ids, details)
SELECT id, occurred_at, action, actor, pool_id, order_id, key_ids, details
FROM jsonb_to_recordset(%s::jsonb) AS e(
    id uuid, occurred_at timestamptz, action text, actor uuid, pool_id uuid, order_id uuid,
    key_ids uuid[], details jsonb
)
"""


EVENTS = """
SELECT id, occurred_at, action, actor, pool_id, order_id, key_ids, details
FROM audit_events
WHERE id > %s
ORDER BY id LIMIT %s
"""
EVENTS_OF_POOL = """
SELECT id, occurred_at, action, actor, pool_id, order_id, key_ids, details
FROM audit_events
WHERE pool_id = %s AND id > %s
ORDER BY id LIMIT %s
"""


# --- G2A merchant (migration 0009) -------------------------------------------------------

INSERT_CREDENTIAL = """
INSERT INTO g2a_merchant_credentials (client_id, seller_id, name, secret_hash, created_at)
VALUES (%(client_id)s, %(seller_id)s, %(name)s, %(secret_hash)s, %(created_at)s)
ON CONFLICT DO NOTHING
"""
MERCHANT_CREDENTIAL = """
SELECT client_id, seller_id, name, secret_hash, created_at, revoked_at
FROM g2a_merchant_credentials WHERE client_id = %s
"""
REVOKE_CREDENTIAL = """
UPDATE g2a_merchant_credentials SET revoked_at = %s
WHERE client_id = %s AND revoked_at IS NULL
"""
DROP_MERCHANT_TOKENS_OF_CLIENT = "DELETE FROM g2a_merchant_tokens WHERE client_id = %s"
# Issuing a token prunes those that expired more than a day before the new one expires, so
# the table stays small without a job of its own.
PRUNE_MERCHANT_TOKENS = "DELETE FROM g2a_merchant_tokens WHERE expires_at < %s"
INSERT_MERCHANT_TOKEN = """
INSERT INTO g2a_merchant_tokens (token_hash, client_id, seller_id, expires_at)
VALUES (%(token_hash)s, %(client_id)s, %(seller_id)s, %(expires_at)s)
"""
MERCHANT_TOKEN = """
SELECT token_hash, client_id, seller_id, expires_at FROM g2a_merchant_tokens
WHERE token_hash = %s
"""
LINKED_OFFERS = f"""
SELECT {OFFER_COLUMNS}
FROM offers
WHERE status = {literal(OfferStatus.ACTIVE)} AND delivery_type = {literal(DeliveryType.AUTO_KEY)}
    AND (seller_id, g2a_product_id) IN (SELECT * FROM unnest(%s::uuid[], %s::text[]))
"""
RESERVATION_COLUMNS = (
    "id, seller_id, state, lines, created_at, expires_at, g2a_order_id, ordered_at"
)
INSERT_RESERVATION = f"""
INSERT INTO g2a_reservations ({RESERVATION_COLUMNS})
VALUES (%(id)s, %(seller_id)s, %(state)s, %(lines)s, %(created_at)s, %(expires_at)s,
        %(g2a_order_id)s, %(ordered_at)s)
ON CONFLICT DO NOTHING
"""
_RESERVATION_RECORD = """
    id text, seller_id uuid, state text, lines jsonb, created_at timestamptz,
    expires_at timestamptz, g2a_order_id bigint, ordered_at timestamptz
"""
INSERT_RESERVATIONS = f"""
INSERT INTO g2a_reservations ({RESERVATION_COLUMNS})
SELECT {RESERVATION_COLUMNS} FROM jsonb_to_recordset(%s::jsonb) AS r({_RESERVATION_RECORD})
ON CONFLICT DO NOTHING
"""
# By primary key, as SAVE_ORDERS.
SAVE_RESERVATIONS = f"""
WITH v AS MATERIALIZED (
    SELECT * FROM jsonb_to_recordset(%s::jsonb) AS v({_RESERVATION_RECORD})
)
UPDATE g2a_reservations AS r SET state = v.state, expires_at = v.expires_at,
    g2a_order_id = v.g2a_order_id, ordered_at = v.ordered_at
FROM v WHERE r.id = ANY(ARRAY(SELECT id FROM v)) AND r.id = v.id
"""
SAVE_RESERVATION = """
UPDATE g2a_reservations SET state = %(state)s, expires_at = %(expires_at)s,
    g2a_order_id = %(g2a_order_id)s, ordered_at = %(ordered_at)s
WHERE id = %(id)s
"""
RESERVATION = f"""
SELECT {RESERVATION_COLUMNS} FROM g2a_reservations WHERE id = %s AND seller_id = %s
"""
RESERVATIONS_BY_IDS = f"""
SELECT {RESERVATION_COLUMNS} FROM g2a_reservations
WHERE (seller_id, id) IN (SELECT * FROM unnest(%s::uuid[], %s::text[]))
ORDER BY id
"""
RESERVATIONS_OF_SELLER = _seller_page(RESERVATION_COLUMNS, "g2a_reservations")
ORDERED_RESERVATION = f"""
SELECT {RESERVATION_COLUMNS} FROM g2a_reservations
WHERE seller_id = %s AND state = {literal(ReservationState.ORDERED)}
    AND (id = %s OR g2a_order_id = %s)
ORDER BY id = %s DESC
LIMIT 1
"""
INSERT_RETURNED = """
INSERT INTO g2a_returned_keys (key_id, seller_id, reservation_id, returned_at)
VALUES (%(key_id)s, %(seller_id)s, %(reservation_id)s, %(returned_at)s)
ON CONFLICT (key_id) DO NOTHING
"""
RETURNED_OF_SELLER = _seller_page(
    "key_id, seller_id, reservation_id, returned_at", "g2a_returned_keys", by="key_id"
)
INSERT_NOTIFICATION = """
INSERT INTO g2a_notifications (
    id, seller_id, type, date, message, auction_id, g2a_offer_id, received_at
)
VALUES (%(id)s, %(seller_id)s, %(type)s, %(date)s, %(message)s, %(auction_id)s,
        %(g2a_offer_id)s, %(received_at)s)
"""
NOTIFICATIONS_OF_SELLER = _seller_page(
    "id, seller_id, type, date, message, auction_id, g2a_offer_id, received_at",
    "g2a_notifications",
)
OFFER_LINK_COLUMNS = "offer_id, seller_id, g2a_offer_id, synced_size, synced_at, sync_error"
SAVE_OFFER_LINK = f"""
INSERT INTO g2a_offer_links ({OFFER_LINK_COLUMNS})
VALUES (%(offer_id)s, %(seller_id)s, %(g2a_offer_id)s, %(synced_size)s, %(synced_at)s,
        %(sync_error)s)
ON CONFLICT (offer_id) DO UPDATE SET
    g2a_offer_id = excluded.g2a_offer_id, synced_size = excluded.synced_size,
    synced_at = excluded.synced_at, sync_error = excluded.sync_error
"""
OFFER_LINK = f"SELECT {OFFER_LINK_COLUMNS} FROM g2a_offer_links WHERE offer_id = %s"
OFFER_LINKS = f"SELECT {OFFER_LINK_COLUMNS} FROM g2a_offer_links ORDER BY offer_id"
OFFER_LINK_BY_G2A_OFFER = f"""
SELECT {OFFER_LINK_COLUMNS} FROM g2a_offer_links WHERE seller_id = %s AND g2a_offer_id = %s
"""
