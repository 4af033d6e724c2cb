-- When each API token last authenticated a request (`autokey token list`).
ALTER TABLE api_tokens ADD COLUMN last_used_at timestamptz;
-- A seller's sales, newest first (GET /seller/orders).
CREATE INDEX orders_seller_id_idx ON orders (seller_id, id DESC);
