-- Expand: add the new column next to the old one and keep both in step.
CREATE TABLE IF NOT EXISTS orders (
    id bigserial PRIMARY KEY,
    amount_cents bigint NOT NULL,
    currency text NOT NULL DEFAULT 'EUR'
);
ALTER TABLE orders ADD COLUMN IF NOT EXISTS currency_code char(3);
UPDATE orders SET currency_code = upper(currency) WHERE currency_code IS NULL;
CREATE OR REPLACE FUNCTION orders_sync_currency() RETURNS trigger AS $$
BEGIN
    IF NEW.currency_code IS NULL THEN
        NEW.currency_code := upper(NEW.currency);
    END IF;
    IF NEW.currency IS NULL THEN
        NEW.currency := NEW.currency_code;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS orders_sync_currency ON orders;
CREATE TRIGGER orders_sync_currency BEFORE INSERT OR UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_sync_currency();
