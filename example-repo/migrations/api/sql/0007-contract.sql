-- Contract: no running version reads orders.currency any more.
DROP TRIGGER IF EXISTS orders_sync_currency ON orders;
DROP FUNCTION IF EXISTS orders_sync_currency();
ALTER TABLE orders ALTER COLUMN currency_code SET NOT NULL;
ALTER TABLE orders DROP COLUMN IF EXISTS currency;
