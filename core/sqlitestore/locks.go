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

// AcquireLock takes l for l.Ref (see core.Store). The decision uses
// l.Since as "now" when set, else the store's clock. Reading the locks in
// the way and writing the new one are one IMMEDIATE transaction, so two
// processes racing for one environment cannot both win.
func (s *Store) AcquireLock(ctx context.Context, l core.Lock) (core.Lock, []core.Lock, error) {
	l, err := s.prepareLock(l)
	if err != nil {
		return core.Lock{}, nil, fmt.Errorf("acquire lock %s: %w", l.Ref, err)
	}
	var expired []core.Lock
	err = s.write(ctx, "acquire lock", func(tx *sql.Tx) error {
		expired = nil // a retried transaction starts again
		cur, err := readLocks(ctx, tx, l.Ref)
		if err != nil {
			return fmt.Errorf("acquire lock %s: %w", l.Ref, err)
		}
		for _, c := range cur {
			if c.Token == l.Token {
				l.Since = c.Since // re-acquiring keeps the time it was first taken
				continue
			}
			if c.Expired(l.Since) {
				if c.Kind == l.Kind || !core.SamePerson(c.Holder, l.Holder) {
					if err := deleteLock(ctx, tx, c); err != nil {
						return fmt.Errorf("acquire lock %s: %w", l.Ref, err)
					}
					expired = append(expired, c)
				}
				continue
			}
			if c.Kind == l.Kind || !core.SamePerson(c.Holder, l.Holder) {
				// The token is the holder's proof of ownership; the loser
				// is told who holds the lock, never handed it.
				c.Token = ""
				return &core.LockHeldError{Lock: c}
			}
		}
		if err := putLock(ctx, tx, l); err != nil {
			return fmt.Errorf("acquire lock %s: %w", l.Ref, err)
		}
		return nil
	})
	if err != nil {
		return core.Lock{}, nil, err
	}
	return l, expired, nil
}

// ForceLock takes l whoever holds a lock of its kind and returns the live
// lock that stood in the way (of its kind first), nil when none did.
func (s *Store) ForceLock(ctx context.Context, l core.Lock) (*core.Lock, error) {
	l, err := s.prepareLock(l)
	if err != nil {
		return nil, fmt.Errorf("force lock %s: %w", l.Ref, err)
	}
	var prev *core.Lock
	err = s.write(ctx, "force lock", func(tx *sql.Tx) error {
		prev = nil
		cur, err := readLocks(ctx, tx, l.Ref)
		if err != nil {
			return fmt.Errorf("force lock %s: %w", l.Ref, err)
		}
		for i := range cur {
			c := cur[i]
			switch {
			case c.Kind == l.Kind:
				prev = &c
			case prev == nil && !c.Expired(l.Since) && !core.SamePerson(c.Holder, l.Holder):
				prev = &c
			}
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

// ExpireLocks removes every lock whose time is up at now and returns them.
func (s *Store) ExpireLocks(ctx context.Context, now time.Time) ([]core.Lock, error) {
	var out []core.Lock
	err := s.write(ctx, "expire locks", func(tx *sql.Tx) error {
		out = nil
		rows, err := tx.QueryContext(ctx, `SELECT `+lockColumns+` FROM locks WHERE expires_at > 0 AND expires_at <= ? ORDER BY service, env, kind`, now.UnixMicro())
		if err != nil {
			return fmt.Errorf("expire locks: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			l, err := scanLock(rows)
			if err != nil {
				return fmt.Errorf("expire locks: %w", err)
			}
			out = append(out, l)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("expire locks: %w", err)
		}
		rows.Close()
		for _, l := range out {
			if err := deleteLock(ctx, tx, l); err != nil {
				return fmt.Errorf("expire locks: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
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
	rows, err := s.r.QueryContext(ctx, `SELECT `+lockColumns+` FROM locks ORDER BY service, env, kind`)
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

// prepareLock fills the kind, token and acquisition time. An operation
// lock needs an expiry: one that could never expire would stay forever
// when its process dies on another host.
func (s *Store) prepareLock(l core.Lock) (core.Lock, error) {
	if l.Ref.Service == "" || l.Ref.Env == "" {
		return l, errors.New("service and environment are required")
	}
	switch l.Kind {
	case "":
		l.Kind = core.LockOperation
	case core.LockOperation, core.LockPerson:
	default:
		return l, fmt.Errorf("unknown lock kind %q", l.Kind)
	}
	if l.Since.IsZero() {
		l.Since = s.now()
	}
	l.Since = l.Since.UTC().Truncate(time.Microsecond)
	if l.ExpiresAt.IsZero() && l.Kind == core.LockOperation {
		return l, errors.New("an operation's lock needs an expiry")
	}
	if !l.ExpiresAt.IsZero() {
		l.ExpiresAt = l.ExpiresAt.UTC().Truncate(time.Microsecond)
	}
	if l.Token == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return l, fmt.Errorf("make token: %w", err)
		}
		l.Token = hex.EncodeToString(b[:])
	}
	return l, nil
}

const lockColumns = `service, env, kind, holder, reason, since, expires_at, token, owner`

func scanLock(sc interface{ Scan(...any) error }) (core.Lock, error) {
	var (
		l             core.Lock
		kind          string
		holder, owner string
		since, expiry int64
	)
	if err := sc.Scan(&l.Ref.Service, &l.Ref.Env, &kind, &holder, &l.Reason, &since, &expiry, &l.Token, &owner); err != nil {
		return l, err
	}
	l.Kind = core.LockKind(kind)
	if err := json.Unmarshal([]byte(holder), &l.Holder); err != nil {
		return l, fmt.Errorf("decode holder of %s: %w", l.Ref, err)
	}
	if err := json.Unmarshal([]byte(owner), &l.Owner); err != nil {
		return l, fmt.Errorf("decode owner of %s: %w", l.Ref, err)
	}
	l.Since = time.UnixMicro(since).UTC()
	if expiry > 0 {
		l.ExpiresAt = time.UnixMicro(expiry).UTC()
	}
	return l, nil
}

func readLocks(ctx context.Context, tx *sql.Tx, ref core.Ref) ([]core.Lock, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+lockColumns+` FROM locks WHERE service = ? AND env = ? ORDER BY kind`, ref.Service, ref.Env)
	if err != nil {
		return nil, fmt.Errorf("read current locks: %w", err)
	}
	defer rows.Close()
	var out []core.Lock
	for rows.Next() {
		l, err := scanLock(rows)
		if err != nil {
			return nil, fmt.Errorf("read current locks: %w", err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read current locks: %w", err)
	}
	return out, nil
}

func deleteLock(ctx context.Context, tx *sql.Tx, l core.Lock) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM locks WHERE token = ?`, l.Token); err != nil {
		return fmt.Errorf("remove the %s lock of %s: %w", l.Kind, l.Ref, err)
	}
	return nil
}

func putLock(ctx context.Context, tx *sql.Tx, l core.Lock) error {
	holder, err := json.Marshal(l.Holder)
	if err != nil {
		return fmt.Errorf("encode holder: %w", err)
	}
	owner, err := json.Marshal(l.Owner)
	if err != nil {
		return fmt.Errorf("encode owner: %w", err)
	}
	var expiry int64
	if !l.ExpiresAt.IsZero() {
		expiry = l.ExpiresAt.UnixMicro()
	}
	_, err = tx.ExecContext(ctx, `
INSERT INTO locks (service, env, kind, holder, reason, since, expires_at, token, owner)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (service, env, kind) DO UPDATE SET
	holder     = excluded.holder,
	reason     = excluded.reason,
	since      = excluded.since,
	expires_at = excluded.expires_at,
	token      = excluded.token,
	owner      = excluded.owner`,
		l.Ref.Service, l.Ref.Env, string(l.Kind), string(holder), l.Reason, l.Since.UnixMicro(), expiry, l.Token, string(owner))
	if err != nil {
		return fmt.Errorf("write lock: %w", err)
	}
	return nil
}
