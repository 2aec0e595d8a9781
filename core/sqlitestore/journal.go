package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// Journal writes an operation or updates the one with its ID. StartedAt
// is kept from the first write; UpdatedAt defaults to now.
func (s *Store) Journal(ctx context.Context, op core.Operation) error {
	if op.ID == "" {
		return errors.New("journal operation: ID is required")
	}
	actor, err := json.Marshal(op.Actor)
	if err != nil {
		return fmt.Errorf("journal operation %s: encode actor: %w", op.ID, err)
	}
	now := s.now()
	if op.StartedAt.IsZero() {
		op.StartedAt = now
	}
	if op.UpdatedAt.IsZero() {
		op.UpdatedAt = now
	}
	return s.write(ctx, "journal operation", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
INSERT INTO operations (id, service, env, kind, from_version, to_version, actor, state, external_ref, message, started_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
	service      = excluded.service,
	env          = excluded.env,
	kind         = excluded.kind,
	from_version = excluded.from_version,
	to_version   = excluded.to_version,
	actor        = excluded.actor,
	state        = excluded.state,
	external_ref = excluded.external_ref,
	message      = excluded.message,
	updated_at   = excluded.updated_at`,
			op.ID, op.Ref.Service, op.Ref.Env, op.Kind, op.From, op.To, string(actor), string(op.State),
			op.ExternalRef, op.Message, op.StartedAt.UnixMicro(), op.UpdatedAt.UnixMicro())
		if err != nil {
			return fmt.Errorf("journal operation %s: %w", op.ID, err)
		}
		return nil
	})
}

const operationColumns = `id, service, env, kind, from_version, to_version, actor, state, external_ref, message, started_at, updated_at`

func scanOperation(sc interface{ Scan(...any) error }) (core.Operation, error) {
	var (
		op               core.Operation
		actor, state     string
		started, updated int64
	)
	if err := sc.Scan(&op.ID, &op.Ref.Service, &op.Ref.Env, &op.Kind, &op.From, &op.To, &actor, &state,
		&op.ExternalRef, &op.Message, &started, &updated); err != nil {
		return op, err
	}
	if err := json.Unmarshal([]byte(actor), &op.Actor); err != nil {
		return op, fmt.Errorf("decode actor of operation %s: %w", op.ID, err)
	}
	op.State = core.OpState(state)
	op.StartedAt = time.UnixMicro(started).UTC()
	op.UpdatedAt = time.UnixMicro(updated).UTC()
	return op, nil
}

// Operation returns one journaled operation, or an error wrapping
// core.ErrNotFound.
func (s *Store) Operation(ctx context.Context, id string) (core.Operation, error) {
	op, err := scanOperation(s.r.QueryRowContext(ctx, `SELECT `+operationColumns+` FROM operations WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return core.Operation{}, fmt.Errorf("operation %s: %w", id, core.ErrNotFound)
	}
	if err != nil {
		return core.Operation{}, fmt.Errorf("read operation %s: %w", id, err)
	}
	return op, nil
}

// Unfinished lists operations that neither succeeded nor failed, oldest
// first: after a crash these are the ones that need an owner.
func (s *Store) Unfinished(ctx context.Context) ([]core.Operation, error) {
	rows, err := s.r.QueryContext(ctx, `
SELECT `+operationColumns+` FROM operations
WHERE state NOT IN (?, ?)
ORDER BY started_at, id`, string(core.OpSucceeded), string(core.OpFailed))
	if err != nil {
		return nil, fmt.Errorf("list unfinished operations: %w", err)
	}
	defer rows.Close()
	var out []core.Operation
	for rows.Next() {
		op, err := scanOperation(rows)
		if err != nil {
			return nil, fmt.Errorf("list unfinished operations: %w", err)
		}
		out = append(out, op)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list unfinished operations: %w", err)
	}
	return out, nil
}

// PutErrorCounts adds counts to the stored buckets, all in one
// transaction: a bucket written twice holds the sum.
func (s *Store) PutErrorCounts(ctx context.Context, counts []core.ErrorCount) error {
	if len(counts) == 0 {
		return nil
	}
	return s.write(ctx, "put error counts", func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `
INSERT INTO error_counts (project, service, env, release, level, fingerprint, bucket, title, count)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (project, service, env, release, level, fingerprint, bucket) DO UPDATE SET
	count = count + excluded.count,
	title = CASE WHEN excluded.title <> '' THEN excluded.title ELSE title END`)
		if err != nil {
			return fmt.Errorf("put error counts: %w", err)
		}
		defer stmt.Close()
		for _, c := range counts {
			if c.Bucket.IsZero() {
				return fmt.Errorf("put error counts for %s %s: bucket time is required", c.Ref, c.Release)
			}
			_, err := stmt.ExecContext(ctx, c.Project, c.Ref.Service, c.Ref.Env, c.Release, c.Level, c.Fingerprint,
				c.Bucket.UnixMicro(), c.Title, c.Count)
			if err != nil {
				return fmt.Errorf("put error counts for %s %s: %w", c.Ref, c.Release, err)
			}
		}
		return nil
	})
}

// ErrorCounts returns an environment's buckets from since on, oldest
// first.
func (s *Store) ErrorCounts(ctx context.Context, ref core.Ref, since time.Time) ([]core.ErrorCount, error) {
	rows, err := s.r.QueryContext(ctx, `
SELECT project, service, env, release, level, fingerprint, title, bucket, count
FROM error_counts
WHERE service = ? AND env = ? AND bucket >= ?
ORDER BY bucket, release, level, fingerprint, project`, ref.Service, ref.Env, since.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("read error counts of %s: %w", ref, err)
	}
	defer rows.Close()
	var out []core.ErrorCount
	for rows.Next() {
		var (
			c      core.ErrorCount
			bucket int64
		)
		if err := rows.Scan(&c.Project, &c.Ref.Service, &c.Ref.Env, &c.Release, &c.Level, &c.Fingerprint, &c.Title,
			&bucket, &c.Count); err != nil {
			return nil, fmt.Errorf("read error counts of %s: %w", ref, err)
		}
		c.Bucket = time.UnixMicro(bucket).UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read error counts of %s: %w", ref, err)
	}
	return out, nil
}

// PruneErrorCounts deletes buckets older than before.
func (s *Store) PruneErrorCounts(ctx context.Context, before time.Time) error {
	return s.write(ctx, "prune error counts", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM error_counts WHERE bucket < ?`, before.UnixMicro()); err != nil {
			return fmt.Errorf("prune error counts before %s: %w", before.UTC().Format(time.RFC3339), err)
		}
		return nil
	})
}
