UPDATE billing.invoices SET due_on = CURRENT_DATE + 30 WHERE due_on IS NULL;
ALTER TABLE billing.invoices ALTER COLUMN due_on SET NOT NULL;
