// Package sqlitestore is Ripcord's embedded state store: one SQLite file
// (.ripcord/state.db) in WAL mode, shared safely by every console and CLI
// run on the machine.
//
// Every write runs in a BEGIN IMMEDIATE transaction, so the read that
// decides (is the lock free? what is the last audit hash?) and the write
// that follows are one step even when two processes race on the same file.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/ripcordhq/ripcord/core"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// busyTimeout is how long a writer waits for another connection or process
// to finish its transaction before giving up with "database is locked".
const busyTimeout = 10 * time.Second

// Store is the SQLite implementation of core.Store.
type Store struct {
	path string
	// w holds the single writer connection: every transaction on it begins
	// IMMEDIATE. r serves reads, which WAL lets run beside the writer.
	w, r  *sql.DB
	clock func() time.Time
}

var _ core.Store = (*Store)(nil)

// Option adjusts a Store.
type Option func(*Store)

// WithClock makes the store read the time from now instead of time.Now;
// lock expiry and default timestamps use it.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.clock = now }
}

// SchemaTooNewError is returned by Open when the database was written by a
// newer Ripcord than this one. The file is left untouched.
type SchemaTooNewError struct {
	File    string
	Version int
	Known   int
}

func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("%s has schema version %d; this ripcord knows up to %d: upgrade ripcord", e.File, e.Version, e.Known)
}

// Open opens (creating if needed) the state database at path and brings
// its schema up to date.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("open state %s: create directory: %w", path, err)
	}
	// Create the file ourselves so it is private from the start; SQLite
	// would create it with the umask's permissions.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}

	s := &Store{path: abs, clock: time.Now}
	for _, o := range opts {
		o(s)
	}

	// The writer is opened without touching the journal mode: a database
	// from a newer Ripcord must be refused before anything writes to it.
	s.w, err = sql.Open("sqlite", dsn(abs, "_txlock=immediate"))
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	s.w.SetMaxOpenConns(1)
	if err := s.prepare(ctx); err != nil {
		s.w.Close()
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}

	s.r, err = sql.Open("sqlite", dsn(abs, "_query_only=1"))
	if err != nil {
		s.w.Close()
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	s.r.SetMaxOpenConns(4)
	if err := s.r.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	return s, nil
}

// dsn builds the connection string every connection shares. synchronous
// FULL because the journal and the audit log must survive a power cut
// once a write returns: intent is journaled before a provider is called.
func dsn(path string, extra string) string {
	u := url.URL{Path: path}
	return "file:" + u.EscapedPath() +
		fmt.Sprintf("?_pragma=busy_timeout(%d)", busyTimeout.Milliseconds()) +
		"&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)&" + extra
}

// prepare refuses a too-new schema, switches the file to WAL and applies
// the migrations this binary has and the file lacks.
func (s *Store) prepare(ctx context.Context) error {
	if err := s.checkVersion(ctx, s.w); err != nil {
		return err
	}
	var mode string
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return fmt.Errorf("enable WAL: %w", err)
	}
	if mode != "wal" {
		return fmt.Errorf("enable WAL: journal mode is still %q", mode)
	}
	return s.write(ctx, "migrate schema", func(tx *sql.Tx) error {
		// Read again inside the transaction: another process may have
		// migrated between the check above and taking the write lock.
		if err := s.checkVersion(ctx, tx); err != nil {
			return err
		}
		v, err := userVersion(ctx, tx)
		if err != nil {
			return err
		}
		for i := v; i < len(migrations); i++ {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
		}
		if v < len(migrations) {
			// PRAGMA takes no parameters; the value is our own integer.
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
				return fmt.Errorf("set schema version: %w", err)
			}
		}
		return nil
	})
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func userVersion(ctx context.Context, q queryer) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

func (s *Store) checkVersion(ctx context.Context, q queryer) error {
	v, err := userVersion(ctx, q)
	if err != nil {
		return err
	}
	if v > len(migrations) {
		return &SchemaTooNewError{File: filepath.Base(s.path), Version: v, Known: len(migrations)}
	}
	return nil
}

// SchemaVersion is the number of migrations this binary knows.
func SchemaVersion() int { return len(migrations) }

// Path is the database file's absolute path.
func (s *Store) Path() string { return s.path }

// Close closes both pools; the last connection to close checkpoints the
// WAL into the main file.
func (s *Store) Close() error {
	var errs []error
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close state %s: %w", s.path, err)
	}
	return nil
}

// write runs fn in one IMMEDIATE transaction: the write lock is taken at
// BEGIN, so nothing fn reads can change before it commits.
func (s *Store) write(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", what, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", what, err)
	}
	return nil
}

// now is the store's clock in UTC at the precision the store keeps.
func (s *Store) now() time.Time { return s.clock().UTC().Truncate(time.Microsecond) }

// Times are stored as unix microseconds, NULL for the zero time.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}
