package core

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Deadlines bound every call to a provider. When one passes, the call's
// context ends — which cancels it through the plugin protocol, so the
// provider sees its own context end — and the operation fails saying what
// did not finish in time: the lock is released and a person can retry.
type Deadlines struct {
	Deploy   time.Duration `json:"deploy"`   // a deploy, or a shift of traffic
	Rollback time.Duration `json:"rollback"` // a rollback, an abort's return to stable, a re-attach
	Health   time.Duration `json:"health"`   // a provider's health check
	Status   time.Duration `json:"status"`   // a status read and other quick calls
	Backup   time.Duration `json:"backup"`   // a backup or verify started from Ripcord
	// Stall is how long a provider stream may stay silent before the host
	// checks that the provider still answers, and says so when it does not.
	Stall time.Duration `json:"stall"`
}

// DefaultDeadlines are the deadlines of a config that sets none.
func DefaultDeadlines() Deadlines {
	return Deadlines{Deploy: 10 * time.Minute, Rollback: 10 * time.Minute, Health: 30 * time.Second, Status: 10 * time.Second, Backup: 6 * time.Hour, Stall: 30 * time.Second}
}

// OrDefaults fills the deadlines left zero with the defaults.
func (d Deadlines) OrDefaults() Deadlines {
	def := DefaultDeadlines()
	for _, p := range []struct{ v, def *time.Duration }{{&d.Deploy, &def.Deploy}, {&d.Rollback, &def.Rollback}, {&d.Health, &def.Health}, {&d.Status, &def.Status}, {&d.Backup, &def.Backup}, {&d.Stall, &def.Stall}} {
		if *p.v <= 0 {
			*p.v = *p.def
		}
	}
	return d
}

// DeadlineError says a provider call did not finish in time.
type DeadlineError struct {
	What     string // "deploy", "rollback", "Status"
	Within   time.Duration
	Provider string
}

func (e *DeadlineError) Error() string {
	verb := "did not finish"
	if e.What != "" && e.What[0] >= 'A' && e.What[0] <= 'Z' {
		verb = "did not answer" // a protocol call by its name
	}
	msg := fmt.Sprintf("%s %s within %s", e.What, verb, ShortDuration(e.Within))
	if e.Provider != "" {
		msg += " (provider " + e.Provider + ")"
	}
	return msg
}

// Unwrap lets errors.Is(err, context.DeadlineExceeded) hold.
func (e *DeadlineError) Unwrap() error { return context.DeadlineExceeded }

// WithDeadline runs fn with ctx bounded by within (no bound when within
// is zero). When the deadline — not the caller — ended the call, the
// error is a *DeadlineError naming what and the provider.
func WithDeadline(ctx context.Context, what, provider string, within time.Duration, fn func(context.Context) error) error {
	if within <= 0 {
		return fn(ctx)
	}
	dctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	deadline, _ := dctx.Deadline()
	err := fn(dctx)
	// The call may see its deadline pass (gRPC compares the clock) before
	// the context's own timer has fired: either one means it was late.
	late := errors.Is(dctx.Err(), context.DeadlineExceeded) || !time.Now().Before(deadline)
	if err != nil && ctx.Err() == nil && late {
		return &DeadlineError{What: what, Within: within, Provider: provider}
	}
	return err
}

// ShortDuration writes a duration the way a person does: "10m", "1h30m",
// "45s", "1.5s".
func ShortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
