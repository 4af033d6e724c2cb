-- G2A-sourced offers and orders, and signed webhooks.
-- SQLite cannot alter a CHECK constraint, so offers and orders are rebuilt. With foreign keys
-- on, the order matters: new_orders references new_offers, so once the old orders are gone
-- nothing references the old offers, and renaming new_offers rewrites that reference.

CREATE TABLE new_offers (
    id                 BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    seller_id          BLOB NOT NULL CHECK (length(seller_id) = 16),
    title              TEXT NOT NULL,
    price_amount       TEXT NOT NULL,
    price_currency     TEXT NOT NULL,
    delivery_type      TEXT NOT NULL CHECK (delivery_type IN ('AUTO_KEY', 'G2A', 'MANUAL')),
    key_pool_id        BLOB REFERENCES key_pools (id),
    status             TEXT NOT NULL CHECK (status IN ('draft', 'active', 'inactive')),
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    g2a_product_id     TEXT,
    max_price_amount   TEXT,
    max_price_currency TEXT,
    CHECK ((max_price_amount IS NULL) = (max_price_currency IS NULL))
) STRICT;

INSERT INTO new_offers (
    id, seller_id, title, price_amount, price_currency, delivery_type, key_pool_id, status,
    created_at, updated_at
)
SELECT id, seller_id, title, price_amount, price_currency, delivery_type, key_pool_id, status,
       created_at, updated_at
FROM offers;

CREATE TABLE new_orders (
    id                  BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    buyer_id            BLOB NOT NULL CHECK (length(buyer_id) = 16),
    seller_id           BLOB NOT NULL CHECK (length(seller_id) = 16),
    offer_id            BLOB NOT NULL REFERENCES new_offers (id),
    pool_id             BLOB NOT NULL REFERENCES key_pools (id),
    quantity            INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_amount   TEXT NOT NULL,
    unit_price_currency TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (
                            status IN ('PENDING', 'PAID', 'FULFILLING', 'FULFILLED', 'CANCELED')),
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    reserved_until      TEXT NOT NULL,
    paid_at             TEXT,
    fulfilled_at        TEXT,
    canceled_at         TEXT,
    cancel_reason       TEXT,
    upstream_order_id   TEXT UNIQUE,
    upstream_state      TEXT CHECK (upstream_state IN (
                            'requested', 'created', 'paid', 'complete', 'failed', 'refunded'))
) STRICT;

INSERT INTO new_orders (
    id, buyer_id, seller_id, offer_id, pool_id, quantity, unit_price_amount,
    unit_price_currency, status, created_at, updated_at, reserved_until, paid_at,
    fulfilled_at, canceled_at, cancel_reason
)
SELECT id, buyer_id, seller_id, offer_id, pool_id, quantity, unit_price_amount,
       unit_price_currency, status, created_at, updated_at, reserved_until, paid_at,
       fulfilled_at, canceled_at, cancel_reason
FROM orders;

DROP TABLE orders;
DROP TABLE offers;
ALTER TABLE new_offers RENAME TO offers;
ALTER TABLE new_orders RENAME TO orders;

CREATE INDEX offers_seller_id ON offers (seller_id, id);
CREATE INDEX orders_buyer_id ON orders (buyer_id, id);
CREATE INDEX orders_pending_reserved_until ON orders (reserved_until) WHERE status = 'PENDING';
CREATE INDEX orders_fulfilling ON orders (updated_at, id) WHERE status = 'FULFILLING';

CREATE TABLE webhook_nonces (
    nonce   TEXT NOT NULL PRIMARY KEY,
    seen_at TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX webhook_nonces_seen_at ON webhook_nonces (seen_at);

CREATE TABLE webhook_events (
    event_id          TEXT NOT NULL PRIMARY KEY,
    type              TEXT NOT NULL,
    upstream_order_id TEXT,
    occurred_at       TEXT,
    received_at       TEXT NOT NULL,
    outcome           TEXT NOT NULL,
    payload           BLOB NOT NULL
) STRICT, WITHOUT ROWID;
