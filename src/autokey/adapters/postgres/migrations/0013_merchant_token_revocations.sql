-- G2A merchant access tokens are cached by server processes like API principals (ADR 0017).
-- Revoking merchant credentials deletes their tokens, and pruning deletes expired ones: a
-- statement that deletes any token announces it on the channel of token revocations, so every
-- server process drops its cached tokens at once.
CREATE FUNCTION autokey_announce_merchant_tokens_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM deleted) THEN
        PERFORM pg_notify('autokey_token_revoked', 'g2a_merchant_tokens');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER g2a_merchant_tokens_deleted
    AFTER DELETE ON g2a_merchant_tokens
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION autokey_announce_merchant_tokens_deleted();
