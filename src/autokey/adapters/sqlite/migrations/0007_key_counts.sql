-- Key counts per pool and status without counting keys: reads stay O(1) in the pool's size.
-- SQLite runs one writer at a time, so one counter row per (pool, status), kept by row
-- triggers in the same transaction as the change, makes nothing wait that did not already.
CREATE TABLE key_counts (
    pool_id BLOB    NOT NULL,
    status  TEXT    NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (pool_id, status)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER keys_counted_on_insert AFTER INSERT ON keys
BEGIN
    INSERT INTO key_counts (pool_id, status, n) VALUES (NEW.pool_id, NEW.status, 1)
    ON CONFLICT (pool_id, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER keys_counted_on_update AFTER UPDATE OF pool_id, status ON keys
WHEN OLD.pool_id IS NOT NEW.pool_id OR OLD.status IS NOT NEW.status
BEGIN
    UPDATE key_counts SET n = n - 1 WHERE pool_id = OLD.pool_id AND status = OLD.status;
    INSERT INTO key_counts (pool_id, status, n) VALUES (NEW.pool_id, NEW.status, 1)
    ON CONFLICT (pool_id, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER keys_counted_on_delete AFTER DELETE ON keys
BEGIN
    UPDATE key_counts SET n = n - 1 WHERE pool_id = OLD.pool_id AND status = OLD.status;
END;

INSERT INTO key_counts (pool_id, status, n)
SELECT pool_id, status, count(*) FROM keys WHERE true GROUP BY pool_id, status;
