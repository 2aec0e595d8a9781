ALTER TABLE products ADD COLUMN archived boolean NOT NULL DEFAULT false;
ALTER TABLE products ADD COLUMN weight_grams integer NOT NULL;
