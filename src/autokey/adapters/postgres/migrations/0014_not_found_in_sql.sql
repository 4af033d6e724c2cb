-- A write that must find its rows can travel without waiting for its answer (ADR 0016): the
-- statement itself raises when a row is missing, naming it, and the error ends the
-- transaction wherever it surfaces (a later statement or COMMIT). SQLSTATE P0002
-- (no_data_found); the message is the resource, the detail the missing id.
CREATE FUNCTION autokey_not_found(resource text, missing uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found', MESSAGE = resource,
            DETAIL = missing::text;
    END IF;
END
$$;
