-- +goose Up
ALTER TABLE orders ALTER COLUMN status TYPE order_status USING status::order_status;

-- +goose Down
ALTER TABLE orders ALTER COLUMN status TYPE text;
