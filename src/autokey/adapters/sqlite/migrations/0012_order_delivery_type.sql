-- An order keeps the delivery type of its offer as it was when the order was placed (see the
-- PostgreSQL migration of the same number). Orders placed before take their offer's current
-- type.
ALTER TABLE orders ADD COLUMN delivery_type TEXT NOT NULL DEFAULT 'AUTO_KEY'
    CHECK (delivery_type IN ('AUTO_KEY', 'G2A', 'MANUAL'));
UPDATE orders SET delivery_type = coalesce(
    (SELECT delivery_type FROM offers WHERE offers.id = orders.offer_id), delivery_type
);
