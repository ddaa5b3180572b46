-- Rollback before contract: remove the new column; the old shape is intact.
DROP TRIGGER IF EXISTS orders_sync_currency ON orders;
DROP FUNCTION IF EXISTS orders_sync_currency();
ALTER TABLE orders DROP COLUMN IF EXISTS currency_code;
