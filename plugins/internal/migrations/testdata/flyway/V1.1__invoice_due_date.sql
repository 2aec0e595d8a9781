ALTER TABLE billing.invoices ADD COLUMN due_on date;
COMMENT ON COLUMN billing.invoices.due_on IS 'When payment is due';
