package core

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Store is Ripcord's durable state. The embedded default is SQLite; a
// PostgreSQL store serves teams that share a bastion fleet. Every
// implementation runs the same test suite (core/storetest).
//
// The audit log is append-only through this interface: there is no call
// that updates or deletes an entry.
type Store interface {
	PutRelease(ctx context.Context, r Release) error
	Release(ctx context.Context, service, version string) (Release, error)
	Releases(ctx context.Context, service string, limit int) ([]Release, error)
	SetHold(ctx context.Context, service, version string, held bool, reason string) error

	// AddDeployment records a new deployment and returns its ID;
	// UpdateDeployment changes state, weight and step.
	AddDeployment(ctx context.Context, d Deployment) (int64, error)
	UpdateDeployment(ctx context.Context, d Deployment) error
	// Deployments lists an environment's history, newest first.
	Deployments(ctx context.Context, ref Ref, limit int) ([]Deployment, error)

	// AppendAudit chains e to the log (filling Seq, PrevHash and Hash) and
	// returns the stored entry.
	AppendAudit(ctx context.Context, e AuditEntry) (AuditEntry, error)
	// Audit lists entries with Seq > after, oldest first.
	Audit(ctx context.Context, after int64, limit int) ([]AuditEntry, error)

	// AcquireLock takes l (of l.Kind) for l.Ref. It refuses with
	// *LockHeldError when a live lock of the same kind has another token,
	// or a live lock of the other kind belongs to someone else: a person's
	// own commands run under their person lock, everyone else meets it.
	// Locks in the way whose time is up are removed and returned, so the
	// caller can audit that they expired.
	AcquireLock(ctx context.Context, l Lock) (got Lock, expired []Lock, err error)
	// ForceLock takes l whoever holds a lock of its kind and returns the
	// live lock that stood in the way, nil when none did; the caller
	// audits it. A person's lock of the other kind stays in place.
	ForceLock(ctx context.Context, l Lock) (prev *Lock, err error)
	// Heartbeat extends a lock held with token.
	Heartbeat(ctx context.Context, ref Ref, token string, until time.Time) error
	ReleaseLock(ctx context.Context, ref Ref, token string) error
	// Locks lists every lock, expired ones included (an abandoned lock
	// stays visible until it is taken over or expired by ExpireLocks).
	Locks(ctx context.Context) ([]Lock, error)
	// ExpireLocks removes the locks whose time is up at now and returns
	// them, for the caller to audit.
	ExpireLocks(ctx context.Context, now time.Time) ([]Lock, error)

	// Journal writes or updates an operation (intent before any provider
	// call); Unfinished lists those not succeeded or failed.
	Journal(ctx context.Context, op Operation) error
	Operation(ctx context.Context, id string) (Operation, error)
	Unfinished(ctx context.Context) ([]Operation, error)

	// PutErrorCounts persists error buckets so a restart keeps the
	// baseline; ErrorCounts reads them back.
	PutErrorCounts(ctx context.Context, counts []ErrorCount) error
	ErrorCounts(ctx context.Context, ref Ref, since time.Time) ([]ErrorCount, error)
	PruneErrorCounts(ctx context.Context, before time.Time) error

	// PutWatcher records (or refreshes) a console watching the project;
	// DropWatcher removes it; Watchers lists those seen since a time.
	PutWatcher(ctx context.Context, w Watcher) error
	DropWatcher(ctx context.Context, id string) error
	Watchers(ctx context.Context, seenSince time.Time) ([]Watcher, error)

	// PutShared keeps the newest fact under each key; Shared lists those
	// written after a time, oldest first. A console that runs the
	// providers shares what they report, so another console on the same
	// store shows it too.
	PutShared(ctx context.Context, facts []SharedFact) error
	Shared(ctx context.Context, after time.Time) ([]SharedFact, error)

	Close() error
}

// SharedFact is the newest event of one kind about one thing (a verdict of
// an environment, a backup set's freshness, a pipeline's run), as JSON.
type SharedFact struct {
	Key   string    `json:"key"`
	Event []byte    `json:"event"` // a JSON Event
	At    time.Time `json:"at"`
}

// Watcher is one console open on the project: who, from where, since
// when. Confirmations name the others, so a person about to roll back
// knows who else is looking at the same screen.
type Watcher struct {
	ID     string    `json:"id"`
	Actor  Actor     `json:"actor"`
	Since  time.Time `json:"since"`
	SeenAt time.Time `json:"seen_at"` // refreshed while the console runs
}

// ErrorCount is one persisted bucket of the error ingest: the count of
// events with one key in one 10-second bucket.
type ErrorCount struct {
	Project     string    `json:"project"`
	Ref         Ref       `json:"ref"`
	Release     string    `json:"release"`
	Level       string    `json:"level"`
	Fingerprint string    `json:"fingerprint"`
	Title       string    `json:"title,omitempty"`
	Bucket      time.Time `json:"bucket"`
	Count       int64     `json:"count"`
}

// ErrNotFound is returned when a lookup finds nothing.
var ErrNotFound = errors.New("not found")

// LockHeldError says who holds a lock the caller wanted.
type LockHeldError struct {
	Lock Lock
	// OwnerGone is set when the process that took the lock no longer
	// runs: its holder may take it over with force (audited).
	OwnerGone bool
}

func (e *LockHeldError) Error() string {
	l := e.Lock
	msg := fmt.Sprintf("%s is locked by %s since %s", l.Ref, l.Holder, l.Since.UTC().Format(time.RFC3339))
	if l.Reason != "" {
		msg += " (" + l.Reason + ")"
	}
	if l.IsPerson() && !l.ExpiresAt.IsZero() {
		msg += " until " + l.ExpiresAt.UTC().Format(time.RFC3339)
	}
	if e.OwnerGone {
		msg += fmt.Sprintf("; the process that held it (pid %d on %s) is gone: take it over with --force (audited)", l.Owner.PID, l.Owner.Host)
	}
	return msg
}

// ErrLockLost is returned by Heartbeat and ReleaseLock when the token no
// longer holds the lock (it expired and someone took it over).
var ErrLockLost = errors.New("lock no longer held")
