ALTER TABLE products ADD COLUMN color text;
ALTER TABLE products ADD COLUM size text;
CREATE INDEX products_color_idx ON products (color);
