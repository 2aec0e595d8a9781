ALTER TABLE billing.invoices ALTER COLUMN due_on DROP NOT NULL;
