package toolrun

import (
	"context"
	"sync"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// Record remembers what a provider saw for itself and the repository cannot
// tell: a run-now it started (running, failed — a failed restic or borg run
// leaves nothing in the repository) and the last verify's outcome. It is
// safe for concurrent use.
type Record struct {
	mu         sync.Mutex
	running    bool
	attempted  time.Time
	attemptOK  bool
	attemptMsg string
	verified   time.Time
	verifyOK   bool
	verifyMsg  string
}

// BeginRun marks a run-now as started; it reports false when one is
// already running, so a second key press does not start a second backup.
func (r *Record) BeginRun(at time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return false
	}
	r.running = true
	r.attempted = at
	return true
}

// EndRun records the run-now's outcome.
func (r *Record) EndRun(ok bool, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running = false
	r.attemptOK = ok
	r.attemptMsg = msg
}

// Verified records a verify's outcome.
func (r *Record) Verified(at time.Time, ok bool, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.verified, r.verifyOK, r.verifyMsg = at, ok, msg
}

// Apply adds what the record knows to facts read from the repository. A
// run this provider attempted after the newest backup in the repository
// becomes the last attempt, with its outcome.
func (r *Record) Apply(f *core.BackupFacts) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		f.Running = true
	}
	if !r.running && !r.attempted.IsZero() && r.attempted.After(f.Attempted) {
		f.Attempted, f.AttemptOK = r.attempted, r.attemptOK
		if !r.attemptOK && r.attemptMsg != "" && f.Status == "" {
			f.Status = r.attemptMsg
		}
	}
	if !r.verified.IsZero() {
		f.VerifiedAt, f.VerifyOK, f.VerifyMessage = r.verified, r.verifyOK, r.verifyMsg
	}
}

// Watch reads facts at once and then every interval, handing each set's
// facts to fn, until ctx ends.
func Watch(ctx context.Context, every time.Duration, read func(context.Context) ([]core.BackupFacts, error), fn func(core.BackupFacts)) error {
	if every <= 0 {
		every = 5 * time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		fs, err := read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		for _, f := range fs {
			fn(f)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
