CREATE SCHEMA IF NOT EXISTS billing;
CREATE TABLE billing.invoices (
    id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id bigint NOT NULL,
    amount   numeric(12, 2) NOT NULL
);
