-- Stock signals: a seller's low-stock threshold per offer, and the level last announced
-- (a crossing is announced once, when the live level differs from this one).
ALTER TABLE offers ADD COLUMN low_stock_threshold integer
    CHECK (low_stock_threshold BETWEEN 0 AND 1000000);
ALTER TABLE offers ADD COLUMN stock_level text NOT NULL DEFAULT 'in_stock'
    CHECK (stock_level IN ('in_stock', 'low', 'out_of_stock'));
-- The stock sweep reads only active AUTO_KEY offers, in id order.
CREATE INDEX offers_stocked_idx ON offers (id)
    WHERE status = 'active' AND delivery_type = 'AUTO_KEY';
