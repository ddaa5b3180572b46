CREATE TABLE IF NOT EXISTS orders (id bigserial PRIMARY KEY, currency text DEFAULT 'EUR');
ALTER TABLE orders ADD COLUMN IF NOT EXISTS currency_code char(3);
