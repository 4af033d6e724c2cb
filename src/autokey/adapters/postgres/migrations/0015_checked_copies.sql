-- A statement that checks a copy of a row this process kept (ADR 0040) raises this when the
-- row no longer holds what the copy holds: SQLSTATE AK001, the message the resource, the
-- detail its id. The transaction then fails as a whole, and its step runs again on the rows
-- themselves.
CREATE FUNCTION autokey_stale(resource text, stale uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF stale IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'AK001', MESSAGE = resource, DETAIL = stale::text;
    END IF;
END
$$;
