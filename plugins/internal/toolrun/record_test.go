package toolrun

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

func TestRecordFailedRunAfterBackup(t *testing.T) {
	backup := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	var r Record
	if !r.BeginRun(backup.Add(18 * time.Hour)) {
		t.Fatal("first run refused")
	}
	if r.BeginRun(backup.Add(18*time.Hour + time.Second)) {
		t.Fatal("a second concurrent run was allowed")
	}
	f := core.BackupFacts{LastStart: backup, Attempted: backup, AttemptOK: true}
	r.Apply(&f)
	if !f.Running {
		t.Error("run in progress not reported")
	}
	r.EndRun(false, "restic: wrong password or no key found")
	f = core.BackupFacts{LastStart: backup, Attempted: backup, AttemptOK: true}
	r.Apply(&f)
	if f.Running || f.AttemptOK || !f.Attempted.Equal(backup.Add(18*time.Hour)) || f.Status != "restic: wrong password or no key found" {
		t.Errorf("facts after a failed run: %+v", f)
	}
	// A newer backup in the repository supersedes the failed attempt.
	newer := backup.Add(20 * time.Hour)
	f = core.BackupFacts{LastStart: newer, Attempted: newer, AttemptOK: true}
	r.Apply(&f)
	if !f.AttemptOK || !f.Attempted.Equal(newer) {
		t.Errorf("older failed run hid a newer success: %+v", f)
	}
}

func TestWatchReportsAtOnceAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	got := make(chan core.BackupFacts, 1)
	done := make(chan error, 1)
	go func() {
		done <- Watch(ctx, time.Hour, func(context.Context) ([]core.BackupFacts, error) {
			return []core.BackupFacts{{Set: "uploads"}}, nil
		}, func(f core.BackupFacts) { got <- f })
	}()
	select {
	case f := <-got:
		if f.Set != "uploads" {
			t.Errorf("set = %q", f.Set)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no report before the first interval")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not stop on cancel")
	}
}
