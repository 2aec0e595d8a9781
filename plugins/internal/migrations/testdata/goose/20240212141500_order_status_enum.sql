-- +goose Up
CREATE TYPE order_status AS ENUM ('pending', 'paid', 'shipped');
ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'refunded' AFTER 'shipped';

-- +goose Down
DROP TYPE order_status;
