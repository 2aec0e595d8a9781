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

// AppendAudit chains e to the log. Reading the last hash and inserting the
// new entry happen in one IMMEDIATE transaction, so appenders in any
// number of processes still produce a single chain.
func (s *Store) AppendAudit(ctx context.Context, e core.AuditEntry) (core.AuditEntry, error) {
	if e.Action == "" {
		return core.AuditEntry{}, fmt.Errorf("append audit: action is required")
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	e.At = e.At.UTC().Truncate(time.Microsecond)
	key, err := s.auditKey()
	if err != nil {
		return core.AuditEntry{}, fmt.Errorf("append audit: %w", err)
	}

	err = s.write(ctx, "append audit", func(tx *sql.Tx) error {
		var (
			last     int64
			lastHash string
		)
		err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&last, &lastHash)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			last, lastHash = 0, core.GenesisHash
		case err != nil:
			return fmt.Errorf("append audit: read last entry: %w", err)
		}
		e.Seq = last + 1
		e.PrevHash = lastHash
		e.Hash = core.HashAudit(e)
		e.Sig = core.SignAudit(key, e)
		entry, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("append audit: encode: %w", err)
		}
		_, err = tx.ExecContext(ctx, `
INSERT INTO audit (seq, at, action, service, env, actor, prev_hash, hash, entry)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.Seq, e.At.UnixMicro(), e.Action, e.Ref.Service, e.Ref.Env, e.Actor.Name, e.PrevHash, e.Hash, string(entry))
		if err != nil {
			return fmt.Errorf("append audit %d: %w", e.Seq, err)
		}
		return nil
	})
	if err != nil {
		return core.AuditEntry{}, err
	}
	// The entry is recorded; a head file that could not be written lags
	// behind, which `audit verify` reports.
	_ = s.writeHead(core.AuditHead{Count: e.Seq, Hash: e.Hash})
	return e, nil
}

// Audit lists entries with Seq > after, oldest first, exactly as they were
// hashed; limit <= 0 means no limit.
func (s *Store) Audit(ctx context.Context, after int64, limit int) ([]core.AuditEntry, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT seq, entry FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`, after, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("read audit after %d: %w", after, err)
	}
	defer rows.Close()
	var out []core.AuditEntry
	for rows.Next() {
		var (
			seq   int64
			entry string
			e     core.AuditEntry
		)
		if err := rows.Scan(&seq, &entry); err != nil {
			return nil, fmt.Errorf("read audit after %d: %w", after, err)
		}
		if err := json.Unmarshal([]byte(entry), &e); err != nil {
			return nil, fmt.Errorf("read audit entry %d: decode: %w", seq, err)
		}
		if e.Seq != seq {
			// The JSON is the hashed record; a mismatch means someone
			// rewrote the file behind the triggers' back.
			return nil, fmt.Errorf("read audit entry %d: %w", seq, &core.ChainError{Seq: seq, Reason: fmt.Sprintf("stored as entry %d", e.Seq)})
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit after %d: %w", after, err)
	}
	return out, nil
}
