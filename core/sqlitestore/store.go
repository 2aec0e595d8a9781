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
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	// mustExist refuses a missing or empty file instead of creating one;
	// created says Open created the file.
	mustExist, created bool
	// w holds the single writer connection: every transaction on it begins
	// IMMEDIATE. r serves reads, which WAL lets run beside the writer.
	w, r  *sql.DB
	clock func() time.Time

	keyMu sync.Mutex
	key   ed25519.PrivateKey // the audit signing key, once loaded
}

var _ core.Store = (*Store)(nil)

// Option adjusts a Store.
type Option func(*Store)

// WithClock makes the store read the time from now instead of time.Now;
// lock expiry and default timestamps use it.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.clock = now }
}

// Existing makes Open refuse a missing or empty file (a *MissingError)
// instead of creating a new, empty state there: a mistyped path or a
// truncated file must not pass for a project with no history.
func Existing() Option {
	return func(s *Store) { s.mustExist = true }
}

// MissingError is returned by Open with Existing when there is no state
// to open.
type MissingError struct {
	Path  string
	Empty bool // the file exists with 0 bytes
}

func (e *MissingError) Error() string {
	if e.Empty {
		return fmt.Sprintf("state file %s is empty (0 bytes): it holds no state; refusing to start a new one in its place", e.Path)
	}
	return fmt.Sprintf("no state file at %s", e.Path)
}

// LostError is returned by Open for a missing or empty state file whose
// audit head file says entries were written: the state was lost, not
// never made, and a new one in its place would hide that. Open wrote
// nothing.
type LostError struct {
	Path  string
	Empty bool
	Head  core.AuditHead
}

func (e *LostError) Error() string {
	what := "is missing"
	if e.Empty {
		what = "is empty (0 bytes)"
	}
	return fmt.Sprintf("state file %s %s, but its audit head %s records %d audit entries: the state was lost, not never made; "+
		"restore it from a backup (then `ripcord audit verify` checks it against that head), or move %s away to start a new state",
		e.Path, what, AuditHeadPath(e.Path), e.Head.Count, AuditHeadPath(e.Path))
}

// CorruptError is returned by Open when the file fails SQLite's
// quick_check. Open wrote nothing to it.
type CorruptError struct {
	Path     string
	Problems []string
}

func (e *CorruptError) Error() string {
	p := e.Problems
	more := ""
	if len(p) > 3 {
		more = fmt.Sprintf(" (and %d more)", len(p)-3)
		p = p[:3]
	}
	return fmt.Sprintf("state file %s is damaged (%s%s); nothing was written to it: run `ripcord state check` for the full report, and restore it from a backup", e.Path, strings.Join(p, "; "), more)
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

// Open opens the state database at path — creating it when missing or
// empty, unless Existing is given — and brings its schema up to date. A
// file that fails SQLite's quick_check is refused before anything is
// written to it.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	s := &Store{path: abs, clock: time.Now}
	for _, o := range opts {
		o(s)
	}
	switch st, err := os.Stat(abs); {
	case errors.Is(err, fs.ErrNotExist) || err == nil && st.Size() == 0:
		if s.mustExist {
			return nil, &MissingError{Path: abs, Empty: err == nil}
		}
		if head, found, herr := ReadAuditHead(abs); found && (herr != nil || head.Count > 0) {
			if herr != nil {
				return nil, fmt.Errorf("open state %s: it is missing or empty and its audit head cannot be read: %w", path, herr)
			}
			return nil, &LostError{Path: abs, Empty: err == nil, Head: head}
		}
		s.created = true
	case err != nil:
		return nil, fmt.Errorf("open state %s: %w", path, err)
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("open state %s: not a regular file (%s)", path, st.Mode().Type())
	default:
		if err := quickCheck(ctx, abs); err != nil {
			return nil, err
		}
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

// Created reports whether Open created the file (it was missing or
// empty): the command says so, since the state starts from nothing.
func (s *Store) Created() bool { return s.created }

// quickCheck runs PRAGMA quick_check on a read-only connection: a file
// SQLite cannot read correctly is refused before it is written to.
func quickCheck(ctx context.Context, path string) error {
	problems, err := check(ctx, path, "quick_check")
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return &CorruptError{Path: path, Problems: problems}
	}
	return nil
}

// Check runs SQLite's full integrity_check on the state file at path,
// read-only, and returns what it found: nothing for a sound file.
func Check(ctx context.Context, path string) ([]string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("check state %s: %w", path, err)
	}
	switch st, err := os.Stat(abs); {
	case errors.Is(err, fs.ErrNotExist):
		return nil, &MissingError{Path: abs}
	case err != nil:
		return nil, fmt.Errorf("check state %s: %w", path, err)
	case st.Size() == 0:
		return nil, &MissingError{Path: abs, Empty: true}
	}
	return check(ctx, abs, "integrity_check")
}

// check runs one of SQLite's checks (its own pragma name) read-only.
func check(ctx context.Context, path, pragma string) ([]string, error) {
	db, err := sql.Open("sqlite", dsn(path, "mode=ro&_query_only=1"))
	if err != nil {
		return nil, fmt.Errorf("check state %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rows, err := db.QueryContext(ctx, "PRAGMA "+pragma)
	if err != nil {
		// A file that is not a database at all fails here.
		return []string{err.Error()}, nil
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, fmt.Errorf("check state %s: %w", path, err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		problems = append(problems, err.Error())
	}
	return problems, nil
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
