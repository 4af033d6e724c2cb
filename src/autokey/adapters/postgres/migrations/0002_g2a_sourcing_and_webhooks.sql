-- Offers whose keys are bought on G2A, the upstream side of their orders, and the signed
-- webhooks G2A sends about them. Every new column is nullable without a default, so adding
-- it rewrites nothing; the CHECKs replaced below keep the 0001 names.

ALTER TABLE offers
    ADD COLUMN g2a_product_id     text,
    ADD COLUMN max_price_amount   numeric CONSTRAINT offers_max_price_amount_check
        CHECK (max_price_amount >= 0),
    ADD COLUMN max_price_currency char(3),
    -- A ceiling is an amount in a currency: both or neither.
    ADD CONSTRAINT offers_max_price_check
        CHECK ((max_price_amount IS NULL) = (max_price_currency IS NULL)),
    DROP CONSTRAINT offers_delivery_type_check,
    ADD CONSTRAINT offers_delivery_type_check
        CHECK (delivery_type IN ('AUTO_KEY', 'G2A', 'MANUAL'));

ALTER TABLE orders
    -- Unique, NULLs allowed: most orders never have an upstream order.
    ADD COLUMN upstream_order_id text CONSTRAINT orders_upstream_order_id_key UNIQUE,
    ADD COLUMN upstream_state    text CONSTRAINT orders_upstream_state_check
        CHECK (upstream_state IN ('requested', 'created', 'paid', 'complete', 'failed', 'refunded')),
    DROP CONSTRAINT orders_status_check,
    ADD CONSTRAINT orders_status_check
        CHECK (status IN ('PENDING', 'PAID', 'FULFILLING', 'FULFILLED', 'CANCELED'));
-- The resumer only ever looks at FULFILLING orders, least recently updated first.
CREATE INDEX orders_fulfilling_updated_at_idx ON orders (updated_at, id)
    WHERE status = 'FULFILLING';

-- Replay protection: a nonce is accepted once while it is remembered; pruned by seen_at.
CREATE TABLE webhook_nonces (
    nonce   text        PRIMARY KEY,
    seen_at timestamptz NOT NULL
);
CREATE INDEX webhook_nonces_seen_at_idx ON webhook_nonces (seen_at);

-- Every verified event, once per event_id; the raw body is kept for reconciliation.
CREATE TABLE webhook_events (
    event_id          text        PRIMARY KEY,
    type              text        NOT NULL CHECK (type IN (
        'order.paid', 'order.complete', 'order.failed', 'order.refunded', 'offer.stock_low'
    )),
    upstream_order_id text,
    occurred_at       timestamptz,
    received_at       timestamptz NOT NULL,
    outcome           text        NOT NULL
        CHECK (outcome IN ('applied', 'stale', 'unmatched', 'recorded')),
    payload           bytea       NOT NULL
);
