-- Outbound webhooks to sellers: their endpoints, and one delivery per event and endpoint,
-- written in the transaction of the change it announces (a transactional outbox).
CREATE TABLE webhook_endpoints (
    id              BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    seller_id       BLOB NOT NULL CHECK (length(seller_id) = 16),
    url             TEXT NOT NULL,
    event_types     TEXT NOT NULL,
    sealed_secret   BLOB NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at      TEXT NOT NULL,
    failing_since   TEXT,
    disabled_at     TEXT,
    disabled_reason TEXT
);
CREATE INDEX webhook_endpoints_seller ON webhook_endpoints (seller_id, id);

CREATE TABLE webhook_deliveries (
    id               BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    endpoint_id      BLOB NOT NULL REFERENCES webhook_endpoints (id),
    seller_id        BLOB NOT NULL CHECK (length(seller_id) = 16),
    event_type       TEXT NOT NULL,
    body             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    created_at       TEXT NOT NULL,
    next_attempt_at  TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    leased_until     TEXT,
    last_attempt_at  TEXT,
    last_status_code INTEGER,
    last_error       TEXT,
    delivered_at     TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
