CREATE OR REPLACE VIEW billing.invoice_totals AS
SELECT order_id, sum(amount) AS total FROM billing.invoices GROUP BY order_id;
