-- The initial schema. Storage types: UUIDs are 16-byte BLOBs (so ORDER BY id is UUID order,
-- and ids are time-ordered UUIDv7), instants are ISO-8601 UTC text with microseconds
-- (fixed width, so text order is time order), amounts are Decimal text, enums their values.

CREATE TABLE api_tokens (
    id          BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    subject     BLOB NOT NULL CHECK (length(subject) = 16),
    role        TEXT NOT NULL CHECK (role IN ('seller', 'buyer', 'admin')),
    name        TEXT NOT NULL,
    secret_hash BLOB NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
) STRICT;

CREATE TABLE key_pools (
    id         BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    seller_id  BLOB NOT NULL CHECK (length(seller_id) = 16),
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

CREATE INDEX key_pools_seller_id ON key_pools (seller_id, id);

-- order_id has no foreign key on purpose: a key is claimed for an order inside the
-- transaction that creates the order, possibly before the order row exists.
-- No CHECK constraints here: keys arrive in bulk uploads of 10,000, and the checks cost
-- a third of the insert time; rows only ever come from `Key` values, already validated.
CREATE TABLE keys (
    id           BLOB NOT NULL PRIMARY KEY,
    pool_id      BLOB NOT NULL REFERENCES key_pools (id),
    status       TEXT NOT NULL,
    sealed       BLOB NOT NULL,
    fingerprint  BLOB NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    order_id     BLOB,
    reserved_at  TEXT,
    delivered_at TEXT
) STRICT, WITHOUT ROWID;

CREATE INDEX keys_pool_status_id ON keys (pool_id, status, id);
-- Most keys have no order yet; a partial index keeps bulk uploads from paying for them.
CREATE INDEX keys_order_id ON keys (order_id) WHERE order_id IS NOT NULL;

CREATE TABLE offers (
    id             BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    seller_id      BLOB NOT NULL CHECK (length(seller_id) = 16),
    title          TEXT NOT NULL,
    price_amount   TEXT NOT NULL,
    price_currency TEXT NOT NULL,
    delivery_type  TEXT NOT NULL CHECK (delivery_type IN ('AUTO_KEY', 'MANUAL')),
    key_pool_id    BLOB REFERENCES key_pools (id),
    status         TEXT NOT NULL CHECK (status IN ('draft', 'active', 'inactive')),
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
) STRICT;

CREATE INDEX offers_seller_id ON offers (seller_id, id);

CREATE TABLE orders (
    id                  BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    buyer_id            BLOB NOT NULL CHECK (length(buyer_id) = 16),
    seller_id           BLOB NOT NULL CHECK (length(seller_id) = 16),
    offer_id            BLOB NOT NULL REFERENCES offers (id),
    pool_id             BLOB NOT NULL REFERENCES key_pools (id),
    quantity            INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_amount   TEXT NOT NULL,
    unit_price_currency TEXT NOT NULL,
    status              TEXT NOT NULL
                        CHECK (status IN ('PENDING', 'PAID', 'FULFILLED', 'CANCELED')),
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    reserved_until      TEXT NOT NULL,
    paid_at             TEXT,
    fulfilled_at        TEXT,
    canceled_at         TEXT,
    cancel_reason       TEXT
) STRICT;

CREATE INDEX orders_buyer_id ON orders (buyer_id, id);
-- The expiry sweeper only ever looks at PENDING orders.
CREATE INDEX orders_pending_reserved_until ON orders (reserved_until) WHERE status = 'PENDING';

CREATE TABLE idempotency_records (
    scope           TEXT NOT NULL,
    key             TEXT NOT NULL,
    fingerprint     BLOB NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('in_flight', 'completed')),
    created_at      TEXT NOT NULL,
    locked_until    TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    response_status INTEGER,
    response_body   BLOB,
    PRIMARY KEY (scope, key)
) STRICT, WITHOUT ROWID;

CREATE INDEX idempotency_records_expires_at ON idempotency_records (expires_at);

-- Append-only; no foreign keys, so the log outlives whatever it mentions.
CREATE TABLE audit_events (
    id          BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    occurred_at TEXT NOT NULL,
    action      TEXT NOT NULL,
    actor       BLOB,
    pool_id     BLOB,
    order_id    BLOB,
    key_ids     TEXT NOT NULL,  -- JSON array of UUID strings
    details     TEXT NOT NULL   -- JSON object of string or integer values
) STRICT;

CREATE INDEX audit_events_pool_id ON audit_events (pool_id, id);
