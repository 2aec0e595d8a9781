-- +goose Up
-- +goose StatementBegin
CREATE TABLE orders (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id),
    total_cents integer NOT NULL CHECK (total_cents >= 0),
    status      text NOT NULL DEFAULT 'pending'
);
-- +goose StatementEnd
CREATE INDEX orders_user_id_idx ON orders (user_id);

-- +goose Down
DROP TABLE orders;
