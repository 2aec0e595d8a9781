package sqlitestore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// AcquireLock takes the lock for l.Ref when it is free, expired, or already
// held with l.Token; otherwise it returns *core.LockHeldError naming the
// holder. The decision uses l.Since as "now" when set, else the store's
// clock. l.ExpiresAt is required: a lock without an expiry could never be
// taken over when its holder dies.
func (s *Store) AcquireLock(ctx context.Context, l core.Lock) (core.Lock, error) {
	l, err := s.prepareLock(l)
	if err != nil {
		return core.Lock{}, fmt.Errorf("acquire lock %s: %w", l.Ref, err)
	}
	err = s.write(ctx, "acquire lock", func(tx *sql.Tx) error {
		cur, err := readLock(ctx, tx, l.Ref)
		if err != nil {
			return fmt.Errorf("acquire lock %s: %w", l.Ref, err)
		}
		if cur != nil {
			switch {
			case cur.Token == l.Token:
				// Re-acquiring keeps the time the holder first took it.
				l.Since = cur.Since
			case !cur.Expired(l.Since):
				// The token is the holder's proof of ownership; the
				// loser is told who holds the lock, never handed it.
				held := *cur
				held.Token = ""
				return &core.LockHeldError{Lock: held}
			}
		}
		if err := putLock(ctx, tx, l); err != nil {
			return fmt.Errorf("acquire lock %s: %w", l.Ref, err)
		}
		return nil
	})
	if err != nil {
		return core.Lock{}, err
	}
	return l, nil
}

// ForceLock takes the lock whoever holds it and returns the previous lock,
// nil when it was free.
func (s *Store) ForceLock(ctx context.Context, l core.Lock) (*core.Lock, error) {
	l, err := s.prepareLock(l)
	if err != nil {
		return nil, fmt.Errorf("force lock %s: %w", l.Ref, err)
	}
	var prev *core.Lock
	err = s.write(ctx, "force lock", func(tx *sql.Tx) error {
		if prev, err = readLock(ctx, tx, l.Ref); err != nil {
			return fmt.Errorf("force lock %s: %w", l.Ref, err)
		}
		if err := putLock(ctx, tx, l); err != nil {
			return fmt.Errorf("force lock %s: %w", l.Ref, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return prev, nil
}

// Heartbeat moves the expiry of the lock held with token to until.
func (s *Store) Heartbeat(ctx context.Context, ref core.Ref, token string, until time.Time) error {
	return s.write(ctx, "heartbeat", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE locks SET expires_at = ? WHERE service = ? AND env = ? AND token = ?`,
			until.UnixMicro(), ref.Service, ref.Env, token)
		return lockRowsChanged("heartbeat", ref, res, err)
	})
}

// ReleaseLock frees the lock held with token.
func (s *Store) ReleaseLock(ctx context.Context, ref core.Ref, token string) error {
	return s.write(ctx, "release lock", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM locks WHERE service = ? AND env = ? AND token = ?`,
			ref.Service, ref.Env, token)
		return lockRowsChanged("release lock", ref, res, err)
	})
}

// lockRowsChanged turns "no row matched the token" into core.ErrLockLost.
func lockRowsChanged(what string, ref core.Ref, res sql.Result, err error) error {
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, ref, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, ref, err)
	}
	if n == 0 {
		return fmt.Errorf("%s %s: %w", what, ref, core.ErrLockLost)
	}
	return nil
}

// Locks lists every lock, expired ones included so an abandoned lock
// stays visible until someone takes it over.
func (s *Store) Locks(ctx context.Context) ([]core.Lock, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+lockColumns+` FROM locks ORDER BY service, env`)
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	defer rows.Close()
	var out []core.Lock
	for rows.Next() {
		l, err := scanLock(rows)
		if err != nil {
			return nil, fmt.Errorf("list locks: %w", err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	return out, nil
}

// prepareLock fills the token and acquisition time and checks the expiry.
func (s *Store) prepareLock(l core.Lock) (core.Lock, error) {
	if l.Ref.Service == "" || l.Ref.Env == "" {
		return l, errors.New("service and environment are required")
	}
	if l.Since.IsZero() {
		l.Since = s.now()
	}
	l.Since = l.Since.UTC().Truncate(time.Microsecond)
	if l.ExpiresAt.IsZero() {
		return l, errors.New("the lock needs an expiry")
	}
	l.ExpiresAt = l.ExpiresAt.UTC().Truncate(time.Microsecond)
	if l.Token == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return l, fmt.Errorf("make token: %w", err)
		}
		l.Token = hex.EncodeToString(b[:])
	}
	return l, nil
}

const lockColumns = `service, env, holder, reason, since, expires_at, token`

func scanLock(sc interface{ Scan(...any) error }) (core.Lock, error) {
	var (
		l             core.Lock
		holder        string
		since, expiry int64
	)
	if err := sc.Scan(&l.Ref.Service, &l.Ref.Env, &holder, &l.Reason, &since, &expiry, &l.Token); err != nil {
		return l, err
	}
	if err := json.Unmarshal([]byte(holder), &l.Holder); err != nil {
		return l, fmt.Errorf("decode holder of %s: %w", l.Ref, err)
	}
	l.Since = time.UnixMicro(since).UTC()
	l.ExpiresAt = time.UnixMicro(expiry).UTC()
	return l, nil
}

func readLock(ctx context.Context, tx *sql.Tx, ref core.Ref) (*core.Lock, error) {
	row := tx.QueryRowContext(ctx, `SELECT `+lockColumns+` FROM locks WHERE service = ? AND env = ?`, ref.Service, ref.Env)
	l, err := scanLock(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read current lock: %w", err)
	}
	return &l, nil
}

func putLock(ctx context.Context, tx *sql.Tx, l core.Lock) error {
	holder, err := json.Marshal(l.Holder)
	if err != nil {
		return fmt.Errorf("encode holder: %w", err)
	}
	_, err = tx.ExecContext(ctx, `
INSERT INTO locks (service, env, holder, reason, since, expires_at, token)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (service, env) DO UPDATE SET
	holder     = excluded.holder,
	reason     = excluded.reason,
	since      = excluded.since,
	expires_at = excluded.expires_at,
	token      = excluded.token`,
		l.Ref.Service, l.Ref.Env, string(holder), l.Reason, l.Since.UnixMicro(), l.ExpiresAt.UnixMicro(), l.Token)
	if err != nil {
		return fmt.Errorf("write lock: %w", err)
	}
	return nil
}
