-- The order hot path (issue 9, ADRs 0016 and 0017).

-- Every revocation, whichever path writes it (`autokey token revoke`, the API, a manual
-- UPDATE from the runbook), is announced on `autokey_token_revoked` when it commits, so each
-- server process drops its cached principals at once. The payload is the token id.
CREATE FUNCTION autokey_announce_token_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('autokey_token_revoked', NEW.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER api_tokens_revoked
    AFTER UPDATE OF revoked_at ON api_tokens
    FOR EACH ROW WHEN (NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL)
    EXECUTE FUNCTION autokey_announce_token_revoked();

-- Each claim and delivery leaves a dead entry at the head of the partial claim index
-- (keys_claim_order); claims walk them until vacuum removes them. The default scale factor
-- (0.2) lets 200,000 pile up in a pool of 10^6 keys; these settings vacuum `keys` after
-- about 1 % of its rows (at least 1,000) changed, and without the cost-based pauses, so the
-- head of the index stays short. Inserts (uploads) are analysed sooner for the same reason.
ALTER TABLE keys SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

-- Key counts per pool and status without counting keys (reads stay O(1) in the pool's size)
-- and without a counter row every claim would update (that would serialise claims): each
-- statement that inserts or changes keys appends one delta row per (pool, status) it moved,
-- from a statement-level trigger, and housekeeping folds the deltas into key_counts
-- (PostgresPoolRepository.fold_counts). A count is key_counts plus the unfolded deltas.
CREATE TABLE key_counts (
    pool_id uuid   NOT NULL,
    status  text   NOT NULL,
    n       bigint NOT NULL,
    PRIMARY KEY (pool_id, status)
);
CREATE TABLE key_count_deltas (
    pool_id uuid   NOT NULL,
    status  text   NOT NULL,
    delta   bigint NOT NULL
);
CREATE INDEX key_count_deltas_pool_id_idx ON key_count_deltas (pool_id);
-- Folding deletes every delta: vacuum after 10,000 of them whatever the table's size.
ALTER TABLE key_count_deltas SET (
    autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000
);

-- Claims start at their pool's mark instead of the head of keys_claim_order, so they do not
-- walk the dead entries that the keys claimed since the last vacuum leave there. Housekeeping
-- sets each mark to its pool's oldest AVAILABLE key (KeyRepository.advance_claim_marks); a
-- key that becomes AVAILABLE below the mark (a release, a late upload) lowers it at once.
CREATE TABLE key_claim_marks (
    pool_id    uuid        PRIMARY KEY,
    created_at timestamptz NOT NULL
);

-- One statement-level trigger function for INSERT and UPDATE of keys, with the rows the
-- statement wrote (new_keys) and, for UPDATE, replaced (old_keys): it appends the count
-- deltas and lowers the claim marks below keys that became AVAILABLE.
CREATE FUNCTION autokey_keys_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO key_count_deltas (pool_id, status, delta)
        SELECT pool_id, status, count(*) FROM new_keys GROUP BY pool_id, status;
    ELSE
        INSERT INTO key_count_deltas (pool_id, status, delta)
        SELECT pool_id, status, sum(delta) FROM (
            SELECT pool_id, status, -1 AS delta FROM old_keys
            UNION ALL
            SELECT pool_id, status, 1 AS delta FROM new_keys
        ) AS moved
        GROUP BY pool_id, status
        HAVING sum(delta) <> 0;
    END IF;
    UPDATE key_claim_marks m SET created_at = k.oldest
    FROM (
        SELECT pool_id, min(created_at) AS oldest FROM new_keys
        WHERE status = 'AVAILABLE' GROUP BY pool_id
    ) AS k
    WHERE m.pool_id = k.pool_id AND m.created_at > k.oldest;
    RETURN NULL;
END
$$;
CREATE FUNCTION autokey_count_deleted_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO key_count_deltas (pool_id, status, delta)
    SELECT pool_id, status, -count(*) FROM deleted_keys GROUP BY pool_id, status;
    RETURN NULL;
END
$$;
CREATE TRIGGER keys_written_on_insert AFTER INSERT ON keys
    REFERENCING NEW TABLE AS new_keys
    FOR EACH STATEMENT EXECUTE FUNCTION autokey_keys_written();
CREATE TRIGGER keys_written_on_update AFTER UPDATE ON keys
    REFERENCING OLD TABLE AS old_keys NEW TABLE AS new_keys
    FOR EACH STATEMENT EXECUTE FUNCTION autokey_keys_written();
CREATE TRIGGER keys_counted_on_delete AFTER DELETE ON keys
    REFERENCING OLD TABLE AS deleted_keys
    FOR EACH STATEMENT EXECUTE FUNCTION autokey_count_deleted_keys();
-- The keys already there (CREATE TRIGGER has locked out writers until this commits).
INSERT INTO key_counts (pool_id, status, n)
SELECT pool_id, status, count(*) FROM keys GROUP BY pool_id, status;
