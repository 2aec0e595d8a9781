package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// PutShared writes the facts in one transaction, each replacing the one
// under its key.
func (s *Store) PutShared(ctx context.Context, facts []core.SharedFact) error {
	if len(facts) == 0 {
		return nil
	}
	return s.write(ctx, "share facts", func(tx *sql.Tx) error {
		for _, f := range facts {
			at := f.At
			if at.IsZero() {
				at = s.now()
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO shared (key, event, at) VALUES (?, ?, ?)
				ON CONFLICT (key) DO UPDATE SET event = excluded.event, at = excluded.at`,
				f.Key, string(f.Event), at.UnixMicro()); err != nil {
				return fmt.Errorf("share fact %s: %w", f.Key, err)
			}
		}
		return nil
	})
}

// Shared lists the facts written after a time, oldest first.
func (s *Store) Shared(ctx context.Context, after time.Time) ([]core.SharedFact, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT key, event, at FROM shared WHERE at > ? ORDER BY at, key`, after.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("list shared facts: %w", err)
	}
	defer rows.Close()
	var out []core.SharedFact
	for rows.Next() {
		var f core.SharedFact
		var ev string
		var at int64
		if err := rows.Scan(&f.Key, &ev, &at); err != nil {
			return nil, fmt.Errorf("list shared facts: %w", err)
		}
		f.Event, f.At = []byte(ev), time.UnixMicro(at).UTC()
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list shared facts: %w", err)
	}
	return out, nil
}
