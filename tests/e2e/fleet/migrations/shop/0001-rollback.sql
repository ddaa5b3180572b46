ALTER TABLE orders DROP COLUMN IF EXISTS currency_code;
