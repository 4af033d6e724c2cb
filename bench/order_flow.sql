-- The straightforward per-order SQL an unbatched implementation runs: one transaction per
-- API call (create with a SKIP LOCKED claim, pay, fulfill), as pgbench measures it.
-- Variables from -D: pool, offer, seller, buyer.
BEGIN;
INSERT INTO orders (id, buyer_id, seller_id, offer_id, pool_id, delivery_type, quantity,
                    unit_price_amount, unit_price_currency, status, created_at, updated_at,
                    reserved_until)
VALUES (gen_random_uuid(), ':buyer', ':seller', ':offer', ':pool', 'AUTO_KEY', 1, 1, 'EUR', 'PENDING',
        now(), now(), now() + interval '15 minutes')
RETURNING id AS order_id \gset
UPDATE keys SET status = 'RESERVED', order_id = ':order_id', reserved_at = now()
WHERE id IN (SELECT id FROM keys WHERE pool_id = ':pool' AND status = 'AVAILABLE'
             ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED);
COMMIT;
BEGIN;
SELECT status FROM orders WHERE id = ':order_id' FOR UPDATE;
UPDATE orders SET status = 'PAID', paid_at = now(), updated_at = now() WHERE id = ':order_id';
COMMIT;
BEGIN;
SELECT status FROM orders WHERE id = ':order_id' FOR UPDATE;
UPDATE keys SET status = 'DELIVERED', delivered_at = now()
WHERE order_id = ':order_id' AND status = 'RESERVED';
UPDATE orders SET status = 'FULFILLED', fulfilled_at = now(), updated_at = now()
WHERE id = ':order_id';
SELECT id, sealed FROM keys WHERE order_id = ':order_id';
COMMIT;
