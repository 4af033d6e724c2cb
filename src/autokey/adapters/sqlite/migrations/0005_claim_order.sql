-- Claims take the oldest AVAILABLE keys of a pool by (created_at, id), as on PostgreSQL
-- (its 0003). Without this partial index a claim would read and sort every AVAILABLE key of
-- the pool; with it, a claim reads exactly the rows it takes.
CREATE INDEX keys_claim_order ON keys (pool_id, created_at, id) WHERE status = 'AVAILABLE';
