CREATE UNIQUE INDEX products_title_key ON products (lower(title));
ALTER TABLE products ADD CONSTRAINT price_positive CHECK (price_cents > 0) NOT VALID;
ALTER TABLE products VALIDATE CONSTRAINT price_positive;
