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
