-- An order keeps the delivery type of its offer as it was when the order was placed: a seller
-- may change an active offer's terms, and an order that reserved keys of the pool is fulfilled
-- from them (one bought on G2A is bought there) whatever the offer says now. Orders placed
-- before this migration take their offer's current type. (On a large orders table, run it in
-- a quiet window: the UPDATE rewrites every order.)
ALTER TABLE orders ADD COLUMN delivery_type text;
UPDATE orders AS o SET delivery_type = f.delivery_type FROM offers AS f WHERE f.id = o.offer_id;
ALTER TABLE orders ALTER COLUMN delivery_type SET NOT NULL;
ALTER TABLE orders ADD CONSTRAINT orders_delivery_type_check
    CHECK (delivery_type IN ('AUTO_KEY', 'G2A', 'MANUAL'));
