-- Selling on G2A through its merchant stock contract (G2A calls autokey). New tables only,
-- with no foreign key into the tables other migrations rebuild; one partial unique index
-- on offers: a seller's ACTIVE AUTO_KEY offers carry distinct G2A product ids.

CREATE TABLE g2a_merchant_credentials (
    client_id   text        PRIMARY KEY,
    seller_id   uuid        NOT NULL,
    name        text        NOT NULL,
    secret_hash bytea       NOT NULL,
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

CREATE TABLE g2a_merchant_tokens (
    token_hash bytea       PRIMARY KEY,
    client_id  text        NOT NULL REFERENCES g2a_merchant_credentials (client_id),
    seller_id  uuid        NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX g2a_merchant_tokens_client_id_idx ON g2a_merchant_tokens (client_id);
CREATE INDEX g2a_merchant_tokens_expires_at_idx ON g2a_merchant_tokens (expires_at);

-- One row per reservation; its lines (product, quantity, order, pool) are a JSON array
-- written once. The id doubles as the merchant order id.
CREATE TABLE g2a_reservations (
    id           text        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 36),
    seller_id    uuid        NOT NULL,
    state        text        NOT NULL CHECK (state IN ('open', 'released', 'ordered')),
    lines        jsonb       NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    g2a_order_id bigint,
    ordered_at   timestamptz
);
CREATE INDEX g2a_reservations_g2a_order_id_idx ON g2a_reservations (seller_id, g2a_order_id)
    WHERE g2a_order_id IS NOT NULL;

CREATE TABLE g2a_returned_keys (
    key_id         uuid        PRIMARY KEY,
    seller_id      uuid        NOT NULL,
    reservation_id text        NOT NULL REFERENCES g2a_reservations (id),
    returned_at    timestamptz NOT NULL
);
CREATE INDEX g2a_returned_keys_seller_id_idx ON g2a_returned_keys (seller_id, key_id);

CREATE TABLE g2a_notifications (
    id           uuid        PRIMARY KEY,
    seller_id    uuid        NOT NULL,
    type         text        NOT NULL,
    date         text        NOT NULL,
    message      text        NOT NULL,
    auction_id   bigint,
    g2a_offer_id text,
    received_at  timestamptz NOT NULL
);
CREATE INDEX g2a_notifications_seller_id_idx ON g2a_notifications (seller_id, id);

CREATE TABLE g2a_offer_links (
    offer_id     uuid        PRIMARY KEY,
    seller_id    uuid        NOT NULL,
    g2a_offer_id text        NOT NULL,
    synced_size  integer,
    synced_at    timestamptz,
    sync_error   text,
    CONSTRAINT g2a_offer_links_seller_offer_key UNIQUE (seller_id, g2a_offer_id)
);

CREATE UNIQUE INDEX offers_active_g2a_product_key ON offers (seller_id, g2a_product_id)
    WHERE status = 'active' AND delivery_type = 'AUTO_KEY' AND g2a_product_id IS NOT NULL;
