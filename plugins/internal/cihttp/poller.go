package cihttp

import (
	"context"
	"time"
)

// Poller runs a CI source's polls: one at once, then one every Poll, or
// every PollActive while a run is in flight, never while the server asked
// to wait, and at once when poked (a webhook, a retry just asked for).
// The GitHub and GitLab sources poll alike; only what a poll reads differs.
type Poller struct {
	wake   chan struct{}
	polled chan struct{} // closed once the first poll ended
	stop   context.CancelFunc
	done   chan struct{}
}

// Polling is what a Poller runs and how often.
type Polling struct {
	Poll, PollActive time.Duration
	// Round is one poll.
	Round func(ctx context.Context)
	// Active says a run is in flight: the next poll comes after PollActive.
	Active func() bool
	// Wait is how long the server asked to be left alone (Conditional.Wait).
	Wait func() time.Duration
	// Poked, when set, is called when a poke cut the wait short, before
	// the poll it brings.
	Poked func()
}

// NewPoller returns a Poller that takes pokes at once and polls once
// started.
func NewPoller() *Poller {
	return &Poller{wake: make(chan struct{}, 1), polled: make(chan struct{}), done: make(chan struct{})}
}

// Start polls until Stop.
func (p *Poller) Start(pl Polling) {
	ctx, cancel := context.WithCancel(context.Background())
	p.stop = cancel
	go p.loop(ctx, pl)
}

// Stop stops polling and waits for a poll under way to end.
func (p *Poller) Stop() {
	p.stop()
	<-p.done
}

// Poke asks for a poll now; pokes while one is pending make one poll.
func (p *Poller) Poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// FirstPoll waits until the first poll ended, or ctx did.
func (p *Poller) FirstPoll(ctx context.Context) error {
	select {
	case <-p.polled:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Poller) loop(ctx context.Context, pl Polling) {
	defer close(p.done)
	for first := true; ; first = false {
		pl.Round(ctx)
		if first {
			close(p.polled)
		}
		interval := pl.Poll
		if pl.Active() {
			interval = pl.PollActive
		}
		if wait := pl.Wait(); wait > interval {
			interval = wait
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-p.wake:
			t.Stop()
			if pl.Poked != nil {
				pl.Poked()
			}
		case <-t.C:
		}
	}
}
