CREATE TABLE products (sku text PRIMARY KEY, title text NOT NULL, price_cents int NOT NULL);
INSERT INTO products (sku, title, price_cents) VALUES ('tee', 'T-shirt', 1900);
