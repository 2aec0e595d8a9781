package cihttp

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pollerUnderTest records the rounds and pokes a Poller runs.
type pollerUnderTest struct {
	mu     sync.Mutex
	events []string
	rounds chan struct{}
	active atomic.Bool
	wait   atomic.Int64 // nanoseconds
}

func (p *pollerUnderTest) add(e string) {
	p.mu.Lock()
	p.events = append(p.events, e)
	p.mu.Unlock()
}

func (p *pollerUnderTest) polling(poll, active time.Duration, round func(context.Context)) Polling {
	return Polling{
		Poll: poll, PollActive: active,
		Round: func(ctx context.Context) {
			if round != nil {
				round(ctx)
			}
			p.add("round")
			p.rounds <- struct{}{}
		},
		Active: p.active.Load,
		Wait:   func() time.Duration { return time.Duration(p.wait.Load()) },
		Poked:  func() { p.add("poked") },
	}
}

func (p *pollerUnderTest) round(t *testing.T, within time.Duration) bool {
	t.Helper()
	select {
	case <-p.rounds:
		return true
	case <-time.After(within):
		return false
	}
}

// The first poll runs at once and FirstPoll returns once it ended; the
// next comes after Poll, or PollActive while a run is in flight.
func TestPollerPollsAtOnceThenAtTheInterval(t *testing.T) {
	p := &pollerUnderTest{rounds: make(chan struct{}, 8)}
	release := make(chan struct{})
	first := true
	poller := NewPoller()
	poller.Start(p.polling(time.Hour, 10*time.Millisecond, func(context.Context) {
		if first {
			first = false
			<-release
		}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	if err := poller.FirstPoll(ctx); err == nil {
		t.Fatal("FirstPoll returned before the first poll ended")
	}
	cancel()
	close(release)
	if !p.round(t, 5*time.Second) {
		t.Fatal("no first poll")
	}
	if err := poller.FirstPoll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p.round(t, 100*time.Millisecond) {
		t.Fatal("polled again before Poll passed, nothing in flight")
	}
	p.active.Store(true)
	poller.Poke() // ends the hour's wait; the next waits PollActive
	if !p.round(t, 5*time.Second) || !p.round(t, 5*time.Second) {
		t.Fatal("not polled every PollActive while a run is in flight")
	}
	poller.Stop()
}

// A wait the server asked for holds the next poll off, however active.
func TestPollerWaitsAsTheServerAsks(t *testing.T) {
	p := &pollerUnderTest{rounds: make(chan struct{}, 8)}
	p.active.Store(true)
	p.wait.Store(int64(time.Hour))
	poller := NewPoller()
	poller.Start(p.polling(time.Millisecond, time.Millisecond, nil))
	if !p.round(t, 5*time.Second) {
		t.Fatal("no first poll")
	}
	if p.round(t, 100*time.Millisecond) {
		t.Fatal("polled while the server asked to wait")
	}
	poller.Stop()
}

// A poke cuts the wait short: Poked runs, then one poll, however many
// pokes came while it waited. Stop waits for the poll under way.
func TestPollerPokeAndStop(t *testing.T) {
	p := &pollerUnderTest{rounds: make(chan struct{}, 8)}
	poller := NewPoller()
	poller.Poke() // before Start: kept for the first wait
	poller.Poke()
	poller.Start(p.polling(time.Hour, time.Hour, nil))
	if !p.round(t, 5*time.Second) || !p.round(t, 5*time.Second) {
		t.Fatal("a poke did not bring a poll")
	}
	if p.round(t, 100*time.Millisecond) {
		t.Fatal("two pokes brought two polls")
	}
	poller.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	want := []string{"round", "poked", "round"}
	if len(p.events) != len(want) {
		t.Fatalf("events = %v, want %v", p.events, want)
	}
	for i := range want {
		if p.events[i] != want[i] {
			t.Fatalf("events = %v, want %v", p.events, want)
		}
	}
}
