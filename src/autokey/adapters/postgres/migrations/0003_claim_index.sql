-- Claims take the oldest AVAILABLE keys of a pool. Ordered by id, the planner walks the
-- primary key (ids are time-ordered, so its cost model expects a match within a few rows)
-- and filters out every key of the pools uploaded earlier: 13 ms per claim behind 40,000
-- other keys, growing with the inventory. Ordered by (created_at, id) from this partial index,
-- a claim reads exactly the rows it takes, whatever else the table holds.
CREATE INDEX keys_claim_order ON keys (pool_id, created_at, id) WHERE status = 'AVAILABLE';
