package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// PutWatcher inserts w or refreshes its SeenAt (Since stays the first).
func (s *Store) PutWatcher(ctx context.Context, w core.Watcher) error {
	if w.ID == "" {
		return fmt.Errorf("put watcher: the watcher has no id")
	}
	actor, err := json.Marshal(w.Actor)
	if err != nil {
		return fmt.Errorf("put watcher %s: %w", w.ID, err)
	}
	if w.SeenAt.IsZero() {
		w.SeenAt = s.now()
	}
	if w.Since.IsZero() {
		w.Since = w.SeenAt
	}
	return s.write(ctx, "put watcher", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO watchers (id, actor, since, seen_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET actor = excluded.actor, seen_at = excluded.seen_at`,
			w.ID, string(actor), w.Since.UnixMicro(), w.SeenAt.UnixMicro())
		if err != nil {
			return fmt.Errorf("put watcher %s: %w", w.ID, err)
		}
		return nil
	})
}

// DropWatcher removes a watcher; an unknown id is not an error.
func (s *Store) DropWatcher(ctx context.Context, id string) error {
	return s.write(ctx, "drop watcher", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM watchers WHERE id = ?`, id); err != nil {
			return fmt.Errorf("drop watcher %s: %w", id, err)
		}
		return nil
	})
}

// Watchers lists the watchers seen at or after seenSince, longest
// watching first. Older rows (consoles that died without saying so) are
// left out.
func (s *Store) Watchers(ctx context.Context, seenSince time.Time) ([]core.Watcher, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, actor, since, seen_at FROM watchers WHERE seen_at >= ? ORDER BY since, id`, seenSince.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("list watchers: %w", err)
	}
	defer rows.Close()
	var out []core.Watcher
	for rows.Next() {
		var w core.Watcher
		var actor string
		var since, seen int64
		if err := rows.Scan(&w.ID, &actor, &since, &seen); err != nil {
			return nil, fmt.Errorf("list watchers: %w", err)
		}
		if err := json.Unmarshal([]byte(actor), &w.Actor); err != nil {
			return nil, fmt.Errorf("list watchers: watcher %s: %w", w.ID, err)
		}
		w.Since, w.SeenAt = time.UnixMicro(since).UTC(), time.UnixMicro(seen).UTC()
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list watchers: %w", err)
	}
	return out, nil
}
