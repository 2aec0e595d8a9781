DROP VIEW IF EXISTS legacy_product_view;
DROP TABLE IF EXISTS legacy_products, legacy_prices CASCADE;
ALTER TABLE products DROP CONSTRAINT IF EXISTS price_positive;
