"""Every SQL statement of the SQLite adapter, as named constants with bound parameters.

Enum values written into a statement are literals, not parameters, so SQLite can match the
partial indexes; each comes from its domain enum through `sql_literals.literal()`, and a
statement that moves keys between statuses is built from the model's named transition
(`KeyTransition.RESERVE`) and named after it (`KEY_RESERVE`).
"""

from __future__ import annotations

from typing import Final

from autokey.adapters.sql_literals import literal
from autokey.domain.model.idempotency import IdempotencyState
from autokey.domain.model.keys import KeyStatus, KeyTransition
from autokey.domain.model.offers import DeliveryType, OfferStatus
from autokey.domain.model.orders import OrderStatus
from autokey.domain.model.outbound import DeliveryStatus

_RESERVE: Final = KeyTransition.RESERVE
_RELEASE: Final = KeyTransition.RELEASE
_DELIVER: Final = KeyTransition.DELIVER

# --- connection and migrations ------------------------------------------------------------

BEGIN_IMMEDIATE = "BEGIN IMMEDIATE"
COMMIT = "COMMIT"
ROLLBACK = "ROLLBACK"
PING = "SELECT 1"

PRAGMA_JOURNAL_WAL = "PRAGMA journal_mode = WAL"
CONNECTION_PRAGMAS = (
    # WAL makes every commit durable against a process crash; NORMAL only risks the last
    # commits on power loss, and spares an fsync per transaction.
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA temp_store = MEMORY",
)

CREATE_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER NOT NULL PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
) STRICT
"""
SCHEMA_MIGRATIONS_EXISTS = (
    "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'"
)
MIGRATION_APPLIED = "SELECT 1 FROM schema_migrations WHERE version = :version"
RECORD_MIGRATION = (
    "INSERT INTO schema_migrations (version, name, applied_at)"
    " VALUES (:version, :name, :applied_at)"
)
SCHEMA_VERSION = "SELECT coalesce(max(version), 0) AS version FROM schema_migrations"

# --- api_tokens ---------------------------------------------------------------------------

TOKEN_INSERT = """
INSERT INTO api_tokens (id, subject, role, name, secret_hash, created_at, revoked_at)
VALUES (:id, :subject, :role, :name, :secret_hash, :created_at, :revoked_at)
"""  # noqa: S105 - SQL, not a secret
TOKEN_REVOKE = """
UPDATE api_tokens SET revoked_at = :at WHERE id = :id AND revoked_at IS NULL
"""  # noqa: S105 - SQL, not a secret
TOKEN_COLUMNS = "id, subject, role, name, secret_hash, created_at, revoked_at, last_used_at"  # noqa: S105 - SQL
TOKEN_BY_SECRET_HASH = f"""
SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE secret_hash = :secret_hash
"""
TOKENS_ALL = f"SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id"
TOKEN_RECORD_USE = """
UPDATE api_tokens SET last_used_at = :at
WHERE id = :id AND (last_used_at IS NULL OR last_used_at < :at)
"""  # noqa: S105 - SQL, not a secret

# --- key_pools ----------------------------------------------------------------------------

POOL_INSERT = """
INSERT INTO key_pools (id, seller_id, name, created_at)
VALUES (:id, :seller_id, :name, :created_at)
"""
POOL_GET = "SELECT id, seller_id, name, created_at FROM key_pools WHERE id = :id"
POOLS_OF_SELLER = """
SELECT id, seller_id, name, created_at FROM key_pools
WHERE seller_id = :seller_id AND id > :after
ORDER BY id LIMIT :limit
"""
# Kept by migration 0007's triggers.
POOL_COUNTS = "SELECT status, n FROM key_counts WHERE pool_id = :pool_id"
AVAILABLE_IN_POOL = f"""
SELECT n FROM key_counts WHERE pool_id = :pool_id AND status = {literal(KeyStatus.AVAILABLE)}
"""

# --- keys ---------------------------------------------------------------------------------

KEY_COLUMNS = (
    "id, pool_id, status, sealed, fingerprint, created_at, order_id, reserved_at, delivered_at"
)
KEY_INSERT = f"""
INSERT INTO keys ({KEY_COLUMNS})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (fingerprint) DO NOTHING
"""
"""Positional parameters: this is the bulk upload path (see `rows.key_insert_values`)."""
# A per-connection scratch table: which keys of an upload with duplicates were inserted.
CREATE_STAGED_KEY_IDS = (
    "CREATE TEMP TABLE IF NOT EXISTS staged_key_ids (id BLOB NOT NULL PRIMARY KEY) WITHOUT ROWID"
)
STAGE_KEY_ID = "INSERT INTO temp.staged_key_ids (id) VALUES (?)"
STAGED_KEY_IDS_STORED = """
SELECT s.id FROM temp.staged_key_ids AS s JOIN main.keys AS k ON k.id = s.id
"""
CLEAR_STAGED_KEY_IDS = "DELETE FROM temp.staged_key_ids"
KEY_GET = f"""
SELECT {KEY_COLUMNS}
FROM keys WHERE id = :id
"""
KEY_BY_FINGERPRINT = f"""
SELECT {KEY_COLUMNS}
FROM keys WHERE fingerprint = :fingerprint
"""
KEY_SAVE = """
UPDATE keys
SET status = :status, order_id = :order_id, reserved_at = :reserved_at,
    delivered_at = :delivered_at
WHERE id = :id
"""
KEYS_IN_POOL = f"""
SELECT {KEY_COLUMNS}
FROM keys
WHERE pool_id = :pool_id AND id > :after
ORDER BY id LIMIT :limit
"""
KEYS_IN_POOL_WITH_STATUS = f"""
SELECT {KEY_COLUMNS}
FROM keys
WHERE pool_id = :pool_id AND status = :status AND id > :after
ORDER BY id LIMIT :limit
"""
# Oldest first by (created_at, id), read straight from the keys_claim_order index (0005).
KEY_RESERVE = f"""
UPDATE keys SET status = {literal(_RESERVE.target)}, order_id = :order_id, reserved_at = :now
WHERE id IN (
    SELECT id FROM keys WHERE pool_id = :pool_id AND status = {literal(_RESERVE.source)}
    ORDER BY created_at, id LIMIT :quantity
)
RETURNING id
"""
KEYS_DELIVERED_TO_ORDER = f"""
SELECT id FROM keys
WHERE order_id = :order_id AND status = {literal(KeyStatus.DELIVERED)} ORDER BY id
"""
KEYS_OF_ORDER = f"""
SELECT {KEY_COLUMNS}
FROM keys
WHERE order_id = :order_id
ORDER BY id
"""
# --- keyring (ADR 0011) ------------------------------------------------------------------
# bytes 2-5 of a sealed value name its master key; the recursive walk probes the
# keys_sealed_with index once per distinct id instead of reading every key.
MASTER_KEY_IDS = """
WITH RECURSIVE ids(id) AS (
    SELECT (SELECT substr(sealed, 2, 4) FROM keys ORDER BY substr(sealed, 2, 4) LIMIT 1)
    UNION ALL
    SELECT (
        SELECT substr(sealed, 2, 4) FROM keys
        WHERE substr(sealed, 2, 4) > ids.id ORDER BY substr(sealed, 2, 4) LIMIT 1
    )
    FROM ids WHERE ids.id IS NOT NULL
)
SELECT id FROM ids WHERE id IS NOT NULL
UNION
SELECT substr(sealed, 2, 4) FROM index_key
UNION
SELECT substr(sealed_secret, 2, 4) FROM webhook_endpoints
"""
INDEX_KEY_GET = "SELECT key_id, sealed FROM index_key"
INDEX_KEY_PIN = """
INSERT INTO index_key (singleton, key_id, sealed) VALUES (1, :key_id, :sealed)
ON CONFLICT (singleton) DO NOTHING
"""
INDEX_KEY_RESEAL = "UPDATE index_key SET sealed = :sealed"
KEYS_SEALED_UNDER = f"""
SELECT {KEY_COLUMNS}
FROM keys
WHERE id > :after AND lower(hex(substr(sealed, 2, 4))) IN (SELECT value FROM json_each(:ids))
ORDER BY id LIMIT :limit
"""
KEY_RESEAL = "UPDATE keys SET sealed = :sealed WHERE id = :id"

KEY_RELEASE = f"""
UPDATE keys SET status = {literal(_RELEASE.target)}, order_id = NULL, reserved_at = NULL
WHERE order_id = :order_id AND status = {literal(_RELEASE.source)}
RETURNING id
"""
KEY_DELIVER = f"""
UPDATE keys SET status = {literal(_DELIVER.target)}, delivered_at = :now
WHERE order_id = :order_id AND status = {literal(_DELIVER.source)}
RETURNING {KEY_COLUMNS}
"""

# --- offers -------------------------------------------------------------------------------

OFFER_COLUMNS = """
id, seller_id, title, price_amount, price_currency, delivery_type, key_pool_id, status,
created_at, updated_at, g2a_product_id, max_price_amount, max_price_currency,
low_stock_threshold, stock_level
"""
OFFER_INSERT = f"""
INSERT INTO offers ({OFFER_COLUMNS})
VALUES (
    :id, :seller_id, :title, :price_amount, :price_currency, :delivery_type, :key_pool_id,
    :status, :created_at, :updated_at, :g2a_product_id, :max_price_amount, :max_price_currency,
    :low_stock_threshold, :stock_level
)
"""
OFFER_SAVE = """
UPDATE offers
SET title = :title, price_amount = :price_amount, price_currency = :price_currency,
    delivery_type = :delivery_type, key_pool_id = :key_pool_id, status = :status,
    updated_at = :updated_at, g2a_product_id = :g2a_product_id,
    max_price_amount = :max_price_amount, max_price_currency = :max_price_currency,
    low_stock_threshold = :low_stock_threshold, stock_level = :stock_level
WHERE id = :id
"""
OFFER_GET = f"SELECT {OFFER_COLUMNS} FROM offers WHERE id = :id"
OFFERS_OF_SELLER = f"""
SELECT {OFFER_COLUMNS} FROM offers
WHERE seller_id = :seller_id AND id > :after
ORDER BY id LIMIT :limit
"""
# The writer lock this transaction holds keeps other sweeps out: nothing to skip.
OFFERS_STOCKED = f"""
SELECT {OFFER_COLUMNS} FROM offers
WHERE status = {literal(OfferStatus.ACTIVE)} AND delivery_type = {literal(DeliveryType.AUTO_KEY)}
    AND (:pool_id IS NULL OR key_pool_id = :pool_id) AND id > :after
ORDER BY id LIMIT :limit
"""

# --- orders -------------------------------------------------------------------------------

ORDER_INSERT = """
INSERT INTO orders (
    id, buyer_id, seller_id, offer_id, pool_id, delivery_type, quantity, unit_price_amount,
    unit_price_currency, status, created_at, updated_at, reserved_until, paid_at,
    fulfilled_at, canceled_at, cancel_reason, upstream_order_id, upstream_state
)
VALUES (
    :id, :buyer_id, :seller_id, :offer_id, :pool_id, :delivery_type, :quantity,
    :unit_price_amount,
    :unit_price_currency, :status, :created_at, :updated_at, :reserved_until, :paid_at,
    :fulfilled_at, :canceled_at, :cancel_reason, :upstream_order_id, :upstream_state
)
"""
ORDER_SAVE = """
UPDATE orders
SET status = :status, updated_at = :updated_at, reserved_until = :reserved_until,
    paid_at = :paid_at, fulfilled_at = :fulfilled_at, canceled_at = :canceled_at,
    cancel_reason = :cancel_reason, upstream_order_id = :upstream_order_id,
    upstream_state = :upstream_state
WHERE id = :id
"""
ORDER_COLUMNS = """
id, buyer_id, seller_id, offer_id, pool_id, delivery_type, quantity, unit_price_amount,
    unit_price_currency, status, created_at, updated_at, reserved_until, paid_at, fulfilled_at,
    canceled_at, cancel_reason, upstream_order_id, upstream_state
"""
ORDER_GET = f"""
SELECT {ORDER_COLUMNS}
FROM orders WHERE id = :id
"""
# Walks orders_buyer_id; a status, when given, filters the rows it walks.
ORDERS_OF_BUYER = f"""
SELECT {ORDER_COLUMNS}
FROM orders
WHERE buyer_id = :buyer_id AND id < :after AND (:status IS NULL OR status = :status)
ORDER BY id DESC LIMIT :limit
"""
ORDERS_OF_SELLER = f"""
SELECT {ORDER_COLUMNS}
FROM orders
WHERE seller_id = :seller_id AND id < :after
    AND (:g2a IS NULL OR (buyer_id = :g2a_customer) = :g2a)
    AND (:status IS NULL OR status = :status)
    AND (:offer_id IS NULL OR offer_id = :offer_id)
    AND (:since IS NULL OR created_at >= :since)
    AND (:until IS NULL OR created_at < :until)
ORDER BY id DESC LIMIT :limit
"""
ORDERS_EXPIRED = f"""
SELECT {ORDER_COLUMNS}
FROM orders
WHERE status = {literal(OrderStatus.PENDING)} AND reserved_until <= :now
ORDER BY reserved_until, id LIMIT :limit
"""

ORDER_BY_UPSTREAM_ID = f"""
SELECT {ORDER_COLUMNS}
FROM orders WHERE upstream_order_id = :upstream_order_id
"""
ORDER_ID_BY_UPSTREAM_ID = "SELECT id FROM orders WHERE upstream_order_id = :upstream_order_id"
ORDERS_FULFILLING = f"""
SELECT {ORDER_COLUMNS}
FROM orders
WHERE status = {literal(OrderStatus.FULFILLING)}
ORDER BY updated_at, id LIMIT :limit
"""

# --- webhooks -----------------------------------------------------------------------------

NONCE_REMEMBER = """
INSERT INTO webhook_nonces (nonce, seen_at) VALUES (:nonce, :seen_at)
ON CONFLICT (nonce) DO NOTHING
"""
NONCES_PRUNE = "DELETE FROM webhook_nonces WHERE seen_at < :before"
EVENT_ADD = """
INSERT INTO webhook_events (
    event_id, type, upstream_order_id, occurred_at, received_at, outcome, payload
)
VALUES (
    :event_id, :type, :upstream_order_id, :occurred_at, :received_at, :outcome, :payload
)
ON CONFLICT (event_id) DO NOTHING
"""
EVENT_GET = """
SELECT event_id, type, upstream_order_id, occurred_at, received_at, outcome, payload
FROM webhook_events WHERE event_id = :event_id
"""

# --- idempotency_records ------------------------------------------------------------------

IDEMPOTENCY_GET = """
SELECT scope, key, fingerprint, state, created_at, locked_until, expires_at,
       response_status, response_body
FROM idempotency_records
WHERE scope = :scope AND key = :key
"""
_IDEMPOTENCY_ROW = """
INSERT INTO idempotency_records (
    scope, key, fingerprint, state, created_at, locked_until, expires_at,
    response_status, response_body
)
VALUES (
    :scope, :key, :fingerprint, :state, :created_at, :locked_until, :expires_at,
    :response_status, :response_body
)
"""
IDEMPOTENCY_INSERT = _IDEMPOTENCY_ROW + "ON CONFLICT (scope, key) DO NOTHING\n"
IDEMPOTENCY_REPLACE = (
    _IDEMPOTENCY_ROW
    + """ON CONFLICT (scope, key) DO UPDATE
SET fingerprint = excluded.fingerprint, state = excluded.state,
    created_at = excluded.created_at, locked_until = excluded.locked_until,
    expires_at = excluded.expires_at, response_status = excluded.response_status,
    response_body = excluded.response_body
"""
)
# A claim is identified by its lease end: a take-over always writes a later one.
_IN_FLIGHT: Final = literal(IdempotencyState.IN_FLIGHT)
IDEMPOTENCY_COMPLETE = f"""
UPDATE idempotency_records
SET state = {literal(IdempotencyState.COMPLETED)}, response_status = :response_status,
    response_body = :response_body
WHERE scope = :scope AND key = :key AND state = {_IN_FLIGHT} AND locked_until = :locked_until
"""
IDEMPOTENCY_RELEASE = f"""
DELETE FROM idempotency_records
WHERE scope = :scope AND key = :key AND state = {_IN_FLIGHT} AND locked_until = :locked_until
"""
IDEMPOTENCY_PURGE = "DELETE FROM idempotency_records WHERE expires_at <= :now"

# --- audit_events -------------------------------------------------------------------------

AUDIT_INSERT = """
INSERT INTO audit_events (id, occurred_at, action, actor, pool_id, order_id, key_ids, details)
VALUES (:id, :occurred_at, :action, :actor, :pool_id, :order_id, :key_ids, :details)
"""
AUDIT_ALL = """
SELECT id, occurred_at, action, actor, pool_id, order_id, key_ids, details
FROM audit_events
WHERE id > :after
ORDER BY id LIMIT :limit
"""
AUDIT_OF_POOL = """
SELECT id, occurred_at, action, actor, pool_id, order_id, key_ids, details
FROM audit_events
WHERE pool_id = :pool_id AND id > :after
ORDER BY id LIMIT :limit
"""

# --- webhook_endpoints and webhook_deliveries (outbound webhooks) ------------------------

ENDPOINT_COLUMNS = (
    "id, seller_id, url, event_types, sealed_secret, status, created_at, failing_since, "
    "disabled_at, disabled_reason"
)
ENDPOINT_INSERT = f"""
INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS})
VALUES (:id, :seller_id, :url, :event_types, :sealed_secret, :status, :created_at,
        :failing_since, :disabled_at, :disabled_reason)
"""
ENDPOINT_SAVE = """
UPDATE webhook_endpoints SET status = :status, failing_since = :failing_since,
    disabled_at = :disabled_at, disabled_reason = :disabled_reason
WHERE id = :id
"""
ENDPOINT_GET = f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = :id"
ENDPOINTS_OF_SELLER = f"""
SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE seller_id = :seller_id ORDER BY id
"""
DELIVERY_COLUMNS = (
    "id, endpoint_id, seller_id, event_type, body, status, created_at, next_attempt_at, "
    "attempts, leased_until, last_attempt_at, last_status_code, last_error, delivered_at"
)
DELIVERY_INSERT = f"""
INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS})
VALUES (:id, :endpoint_id, :seller_id, :event_type, :body, :status, :created_at,
        :next_attempt_at, :attempts, :leased_until, :last_attempt_at, :last_status_code,
        :last_error, :delivered_at)
"""
DELIVERY_SAVE = """
UPDATE webhook_deliveries SET status = :status, next_attempt_at = :next_attempt_at,
    attempts = :attempts, leased_until = :leased_until, last_attempt_at = :last_attempt_at,
    last_status_code = :last_status_code, last_error = :last_error,
    delivered_at = :delivered_at
WHERE id = :id
"""
DELIVERY_GET = f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = :id"
# Writers are serialised (BEGIN IMMEDIATE), so select-then-lease cannot race.
DELIVERIES_DUE = f"""
SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
WHERE status = {literal(DeliveryStatus.PENDING)} AND next_attempt_at <= :now
    AND (leased_until IS NULL OR leased_until <= :now)
ORDER BY next_attempt_at, id
LIMIT :limit
"""
DELIVERIES_OF_ENDPOINT = f"""
SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
WHERE endpoint_id = :endpoint_id AND id < :after
ORDER BY id DESC LIMIT :limit
"""
ENDPOINTS_ALL = f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY id"
ENDPOINT_RESEAL = "UPDATE webhook_endpoints SET sealed_secret = :sealed WHERE id = :id"
