-- autokey initial schema. Applied by `autokey migrate`, recorded in schema_migrations
-- (which migrate() itself creates before the first file runs).

CREATE TABLE api_tokens (
    id          uuid        PRIMARY KEY,
    subject     uuid        NOT NULL,
    role        text        NOT NULL CHECK (role IN ('seller', 'buyer', 'admin')),
    name        text        NOT NULL,
    secret_hash bytea       NOT NULL,
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    CONSTRAINT api_tokens_secret_hash_key UNIQUE (secret_hash)
);

CREATE TABLE key_pools (
    id         uuid        PRIMARY KEY,
    seller_id  uuid        NOT NULL,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX key_pools_seller_id_idx ON key_pools (seller_id, id);

CREATE TABLE keys (
    id           uuid        PRIMARY KEY,
    pool_id      uuid        NOT NULL CONSTRAINT keys_pool_id_fkey REFERENCES key_pools (id),
    status       text        NOT NULL
        CHECK (status IN ('AVAILABLE', 'RESERVED', 'DELIVERED', 'INVALID')),
    sealed       bytea       NOT NULL,
    fingerprint  bytea       NOT NULL,
    created_at   timestamptz NOT NULL,
    -- No foreign key: a claim may name an order whose row is written later in the
    -- same transaction, or never (the contract claims for bare order ids).
    order_id     uuid,
    reserved_at  timestamptz,
    delivered_at timestamptz,
    -- De-duplication spans every pool: one plaintext is sold at most once.
    CONSTRAINT keys_fingerprint_key UNIQUE (fingerprint)
);
-- Claims, counts and status-filtered listings all walk this index in id order.
CREATE INDEX keys_pool_status_id_idx ON keys (pool_id, status, id);
CREATE INDEX keys_order_id_idx ON keys (order_id) WHERE order_id IS NOT NULL;

CREATE TABLE offers (
    id             uuid        PRIMARY KEY,
    seller_id      uuid        NOT NULL,
    title          text        NOT NULL,
    -- Plain numeric (no scale) so Decimal("9.99") comes back exactly as stored.
    price_amount   numeric     NOT NULL CHECK (price_amount >= 0),
    price_currency char(3)     NOT NULL,
    delivery_type  text        NOT NULL CHECK (delivery_type IN ('AUTO_KEY', 'MANUAL')),
    key_pool_id    uuid        CONSTRAINT offers_key_pool_id_fkey REFERENCES key_pools (id),
    status         text        NOT NULL CHECK (status IN ('draft', 'active', 'inactive')),
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX offers_seller_id_idx ON offers (seller_id, id);

CREATE TABLE orders (
    id                  uuid        PRIMARY KEY,
    buyer_id            uuid        NOT NULL,
    seller_id           uuid        NOT NULL,
    offer_id            uuid        NOT NULL CONSTRAINT orders_offer_id_fkey REFERENCES offers (id),
    pool_id             uuid        NOT NULL CONSTRAINT orders_pool_id_fkey REFERENCES key_pools (id),
    quantity            integer     NOT NULL CHECK (quantity > 0),
    unit_price_amount   numeric     NOT NULL CHECK (unit_price_amount >= 0),
    unit_price_currency char(3)     NOT NULL,
    status              text        NOT NULL
        CHECK (status IN ('PENDING', 'PAID', 'FULFILLED', 'CANCELED')),
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    reserved_until      timestamptz NOT NULL,
    paid_at             timestamptz,
    fulfilled_at        timestamptz,
    canceled_at         timestamptz,
    cancel_reason       text
);
CREATE INDEX orders_buyer_id_idx ON orders (buyer_id, id DESC);
-- The expiry sweeper only ever looks at PENDING orders.
CREATE INDEX orders_pending_reserved_until_idx ON orders (reserved_until)
    WHERE status = 'PENDING';

CREATE TABLE idempotency_records (
    scope           text        NOT NULL,
    key             text        NOT NULL,
    fingerprint     bytea       NOT NULL,
    state           text        NOT NULL CHECK (state IN ('in_flight', 'completed')),
    created_at      timestamptz NOT NULL,
    locked_until    timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    response_status integer,
    response_body   bytea,
    PRIMARY KEY (scope, key),
    CHECK ((response_status IS NULL) = (response_body IS NULL))
);
CREATE INDEX idempotency_records_expires_at_idx ON idempotency_records (expires_at);

-- Append-only; no foreign keys so history outlives whatever it mentions.
CREATE TABLE audit_events (
    id          uuid        PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    action      text        NOT NULL,
    actor       uuid,
    pool_id     uuid,
    order_id    uuid,
    key_ids     uuid[]      NOT NULL DEFAULT '{}',
    details     jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_pool_id_idx ON audit_events (pool_id, id);
