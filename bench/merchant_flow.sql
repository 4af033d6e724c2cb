-- The straightforward SQL of G2A's two merchant calls, one transaction each, as pgbench
-- measures it: reserve (find the linked offer, create the order, SKIP LOCKED claim, record
-- the reservation) and order (lock the reservation, pay and fulfil the order, read the keys);
-- each answers the pool's available keys (at most 10,000) from the key counts, as autokey does.
-- Variables from -D: pool, offer, seller, buyer, product.
BEGIN;
SELECT id, key_pool_id FROM offers
WHERE seller_id = ':seller' AND g2a_product_id = ':product' AND status = 'active'
  AND delivery_type = 'AUTO_KEY';
INSERT INTO orders (id, buyer_id, seller_id, offer_id, pool_id, delivery_type, quantity,
                    unit_price_amount, unit_price_currency, status, created_at, updated_at,
                    reserved_until)
VALUES (gen_random_uuid(), ':buyer', ':seller', ':offer', ':pool', 'AUTO_KEY', 1, 1, 'EUR', 'PENDING',
        now(), now(), now() + interval '30 minutes')
RETURNING id AS order_id \gset
UPDATE keys SET status = 'RESERVED', order_id = ':order_id', reserved_at = now()
WHERE id IN (SELECT id FROM keys WHERE pool_id = ':pool' AND status = 'AVAILABLE'
             ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED);
INSERT INTO g2a_reservations (id, seller_id, state, lines, created_at, expires_at)
VALUES (':order_id', ':seller', 'open',
        jsonb_build_array(jsonb_build_object('product_id', ':product', 'quantity', 1,
                                             'order_id', ':order_id', 'pool_id', ':pool')),
        now(), now() + interval '30 minutes');
SELECT least(sum(n), 10000) FROM (
    SELECT n FROM key_counts WHERE pool_id = ':pool' AND status = 'AVAILABLE'
    UNION ALL
    SELECT delta FROM key_count_deltas WHERE pool_id = ':pool' AND status = 'AVAILABLE'
) AS counted;
COMMIT;
BEGIN;
SELECT state, lines FROM g2a_reservations WHERE id = ':order_id' AND seller_id = ':seller'
FOR UPDATE;
SELECT status FROM orders WHERE id = ':order_id' FOR UPDATE;
UPDATE orders SET status = 'PAID', paid_at = now(), updated_at = now() WHERE id = ':order_id';
UPDATE keys SET status = 'DELIVERED', delivered_at = now()
WHERE order_id = ':order_id' AND status = 'RESERVED';
UPDATE orders SET status = 'FULFILLED', fulfilled_at = now(), updated_at = now()
WHERE id = ':order_id';
SELECT id, sealed FROM keys WHERE order_id = ':order_id';
UPDATE g2a_reservations SET state = 'ordered', g2a_order_id = 1, ordered_at = now()
WHERE id = ':order_id';
SELECT least(sum(n), 10000) FROM (
    SELECT n FROM key_counts WHERE pool_id = ':pool' AND status = 'AVAILABLE'
    UNION ALL
    SELECT delta FROM key_count_deltas WHERE pool_id = ':pool' AND status = 'AVAILABLE'
) AS counted;
COMMIT;
