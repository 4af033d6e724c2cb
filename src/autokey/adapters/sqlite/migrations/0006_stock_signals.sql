-- Stock signals: a seller's low-stock threshold per offer, and the level last announced
-- (a crossing is announced once, when the live level differs from this one).
ALTER TABLE offers ADD COLUMN low_stock_threshold INTEGER
    CHECK (low_stock_threshold BETWEEN 0 AND 1000000);
ALTER TABLE offers ADD COLUMN stock_level TEXT NOT NULL DEFAULT 'in_stock'
    CHECK (stock_level IN ('in_stock', 'low', 'out_of_stock'));
