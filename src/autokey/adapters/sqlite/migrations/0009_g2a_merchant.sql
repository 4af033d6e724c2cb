-- Selling on G2A through its merchant stock contract (G2A calls autokey). New tables only,
-- with no foreign key into the tables other migrations rebuild; one partial unique index
-- on offers: a seller's ACTIVE AUTO_KEY offers carry distinct G2A product ids.

CREATE TABLE g2a_merchant_credentials (
    client_id   TEXT NOT NULL PRIMARY KEY,
    seller_id   BLOB NOT NULL CHECK (length(seller_id) = 16),
    name        TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
) STRICT;

CREATE TABLE g2a_merchant_tokens (
    token_hash BLOB NOT NULL PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES g2a_merchant_credentials (client_id),
    seller_id  BLOB NOT NULL CHECK (length(seller_id) = 16),
    expires_at TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX g2a_merchant_tokens_client_id ON g2a_merchant_tokens (client_id);
CREATE INDEX g2a_merchant_tokens_expires_at ON g2a_merchant_tokens (expires_at);

-- One row per reservation; its lines (product, quantity, order, pool) are a JSON array
-- written once. The id doubles as the merchant order id.
CREATE TABLE g2a_reservations (
    id           TEXT NOT NULL PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 36),
    seller_id    BLOB NOT NULL CHECK (length(seller_id) = 16),
    state        TEXT NOT NULL CHECK (state IN ('open', 'released', 'ordered')),
    lines        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    g2a_order_id INTEGER,
    ordered_at   TEXT
) STRICT;
CREATE INDEX g2a_reservations_g2a_order_id ON g2a_reservations (seller_id, g2a_order_id)
    WHERE g2a_order_id IS NOT NULL;

CREATE TABLE g2a_returned_keys (
    key_id         BLOB NOT NULL PRIMARY KEY CHECK (length(key_id) = 16),
    seller_id      BLOB NOT NULL CHECK (length(seller_id) = 16),
    reservation_id TEXT NOT NULL REFERENCES g2a_reservations (id),
    returned_at    TEXT NOT NULL
) STRICT;
CREATE INDEX g2a_returned_keys_seller_id ON g2a_returned_keys (seller_id, key_id);

CREATE TABLE g2a_notifications (
    id           BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    seller_id    BLOB NOT NULL CHECK (length(seller_id) = 16),
    type         TEXT NOT NULL,
    date         TEXT NOT NULL,
    message      TEXT NOT NULL,
    auction_id   INTEGER,
    g2a_offer_id TEXT,
    received_at  TEXT NOT NULL
) STRICT;
CREATE INDEX g2a_notifications_seller_id ON g2a_notifications (seller_id, id);

CREATE TABLE g2a_offer_links (
    offer_id     BLOB NOT NULL PRIMARY KEY CHECK (length(offer_id) = 16),
    seller_id    BLOB NOT NULL CHECK (length(seller_id) = 16),
    g2a_offer_id TEXT NOT NULL,
    synced_size  INTEGER,
    synced_at    TEXT,
    sync_error   TEXT,
    UNIQUE (seller_id, g2a_offer_id)
) STRICT;

CREATE UNIQUE INDEX offers_active_g2a_product ON offers (seller_id, g2a_product_id)
    WHERE status = 'active' AND delivery_type = 'AUTO_KEY' AND g2a_product_id IS NOT NULL;
