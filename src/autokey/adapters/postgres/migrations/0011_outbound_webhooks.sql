-- Outbound webhooks to sellers: their endpoints, and one delivery per event and endpoint,
-- written in the transaction of the change it announces (a transactional outbox).
CREATE TABLE webhook_endpoints (
    id              uuid PRIMARY KEY,
    seller_id       uuid NOT NULL,
    url             text NOT NULL,
    event_types     text[] NOT NULL,
    sealed_secret   bytea NOT NULL,
    status          text NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at      timestamptz NOT NULL,
    failing_since   timestamptz,
    disabled_at     timestamptz,
    disabled_reason text
);
CREATE INDEX webhook_endpoints_seller_idx ON webhook_endpoints (seller_id, id);

CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY,
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id),
    seller_id        uuid NOT NULL,
    event_type       text NOT NULL,
    body             text NOT NULL,
    status           text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    created_at       timestamptz NOT NULL,
    next_attempt_at  timestamptz NOT NULL,
    attempts         integer NOT NULL,
    leased_until     timestamptz,
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    delivered_at     timestamptz
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at, id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id DESC);
