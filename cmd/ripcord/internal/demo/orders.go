package demo

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// OrdersFile is the name of the orders database in a service's data dir.
const OrdersFile = "orders.sqlite"

// busyTimeout is how long a connection waits for another process's write
// lock: the stable and the canary release, and the backup job, share the
// file, so short waits are normal.
const busyTimeout = 5 * time.Second

const ordersSchema = `CREATE TABLE IF NOT EXISTS orders (
	id           INTEGER PRIMARY KEY,
	version      TEXT    NOT NULL,
	amount_cents INTEGER NOT NULL,
	created_at   TEXT    NOT NULL
)`

// ordersDSN is the connection string every connection to the orders
// database uses.
func ordersDSN(path string) string {
	u := url.URL{Path: path}
	return "file:" + u.EscapedPath() +
		fmt.Sprintf("?_pragma=busy_timeout(%d)", busyTimeout.Milliseconds()) +
		"&_pragma=journal_mode(WAL)"
}

// openOrders opens (creating when absent) the orders database at path,
// with its table in place.
func openOrders(ctx context.Context, path string) (*sql.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating the directory of %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", ordersDSN(path))
	if err != nil {
		return nil, fmt.Errorf("opening orders database %s: %w", path, err)
	}
	if _, err := db.ExecContext(ctx, ordersSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("creating the orders table in %s: %w", path, err)
	}
	return db, nil
}

// insertOrder records one order and returns its id.
func insertOrder(ctx context.Context, db *sql.DB, version string, amountCents int) (int64, error) {
	res, err := db.ExecContext(ctx,
		`INSERT INTO orders (version, amount_cents, created_at) VALUES (?, ?, ?)`,
		version, amountCents, time.Now().UTC().Format(time.RFC3339Nano))
	if err != nil {
		return 0, fmt.Errorf("inserting an order: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("reading the new order's id: %w", err)
	}
	return id, nil
}
