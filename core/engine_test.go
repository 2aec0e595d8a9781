package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func testEngine(limit int) *Engine {
	return NewEngine(EngineOptions{Project: "shop", Services: []string{"api"}, Envs: []string{"staging", "production"}, QueueLimit: limit})
}

var prod = Ref{Service: "api", Env: "production"}

func progress(i int) Event {
	return Event{Kind: EvDeployment, Ref: prod, Key: "deploy/" + fmt.Sprint(i%7), Deployment: &Deployment{Ref: prod, Version: "v2", Weight: i % 100, State: DeployProgressing}}
}

func final(i int) Event {
	return Event{Kind: EvNotice, Ref: prod, Final: true, Notice: fmt.Sprintf("final %d", i)}
}

// within fails the test if fn does not return before the deadline: the
// engine must never wait for a subscriber.
func within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not finish within %s: something blocked", what, d)
	}
}

func TestSlowSubscriberNeverBlocksFastOne(t *testing.T) {
	e := testEngine(64)
	_, slow := e.Subscribe() // never reads until the end
	_, fast := e.Subscribe()
	const n, every = 50_000, 1000

	got := make(chan []Event, 1)
	go func() {
		var evs []Event
		finals := 0
		for finals < n/every {
			ev, err := fast.Next(context.Background())
			if err != nil {
				break
			}
			evs = append(evs, ev)
			if ev.Final {
				finals++
			}
		}
		got <- evs
	}()

	within(t, 20*time.Second, "publishing", func() {
		for i := 1; i <= n; i++ {
			if i%every == 0 {
				e.Publish(final(i))
			} else {
				e.Publish(progress(i))
			}
		}
	})

	var fastEvs []Event
	within(t, 20*time.Second, "the fast subscriber", func() { fastEvs = <-got })
	var last uint64
	var finals []string
	for _, ev := range fastEvs {
		if ev.Seq <= last {
			t.Fatalf("fast subscriber: seq %d after %d: events out of order", ev.Seq, last)
		}
		last = ev.Seq
		if ev.Final {
			finals = append(finals, ev.Notice)
		}
	}
	if len(finals) != n/every || finals[0] != "final 1000" || finals[len(finals)-1] != fmt.Sprintf("final %d", n) {
		t.Fatalf("fast subscriber got finals %d (first %q): want all %d in order", len(finals), finals[0], n/every)
	}

	// The slow one reads at last: every final event is there, in order,
	// and what it was holding stayed within its bound.
	evs := slow.Drain(nil)
	if len(evs) > 64 {
		t.Fatalf("slow subscriber held %d events, bound is 64", len(evs))
	}
	var slowFinals []string
	last = 0
	for _, ev := range evs {
		if ev.Seq <= last {
			t.Fatalf("slow subscriber: out of order")
		}
		last = ev.Seq
		if ev.Final {
			slowFinals = append(slowFinals, ev.Notice)
		}
	}
	if strings.Join(slowFinals, ",") != strings.Join(finals, ",") {
		t.Fatalf("slow subscriber finals = %v, want %v", slowFinals, finals)
	}
	if slow.Dropped() == 0 {
		t.Fatalf("slow subscriber dropped nothing, yet it cannot hold %d events", n)
	}
}

func TestProgressCoalescesToNewest(t *testing.T) {
	e := testEngine(0)
	_, s := e.Subscribe()
	for w := 0; w <= 50; w += 10 {
		e.Publish(Event{Kind: EvDeployment, Ref: prod, Key: "weight", Deployment: &Deployment{Ref: prod, Weight: w}})
	}
	e.Publish(final(1))
	evs := s.Drain(nil)
	if len(evs) != 2 {
		t.Fatalf("got %d events, want the newest progress and the final", len(evs))
	}
	if evs[0].Deployment.Weight != 50 || !evs[1].Final {
		t.Fatalf("got weight %d then final=%v; want weight 50 then the final", evs[0].Deployment.Weight, evs[1].Final)
	}
}

func TestOverflowOfFinalsResyncsWithSnapshot(t *testing.T) {
	e := testEngine(4)
	_, s := e.Subscribe()
	for i := 0; i < 10; i++ {
		e.Publish(Event{Kind: EvVerdict, Ref: prod, Final: true, Verdict: &SpikeVerdict{Ref: prod, Kind: VerdictSpike, Candidate: fmt.Sprint("v", i)}})
	}
	evs := s.Drain(nil)
	if len(evs) != 1 || evs[0].Kind != EvResync {
		t.Fatalf("got %d events (first %s), want one resync", len(evs), evs[0].Kind)
	}
	if v := evs[0].Snapshot.Verdicts[prod]; v.Candidate != "v9" {
		t.Fatalf("resync snapshot has verdict for %q, want the newest, v9", v.Candidate)
	}
	// Delivery goes on normally after a resync.
	e.Publish(final(1))
	if evs := s.Drain(nil); len(evs) != 1 || evs[0].Notice != "final 1" {
		t.Fatalf("after resync got %v", evs)
	}
}

func TestSnapshotPlusEventsEqualsEngineState(t *testing.T) {
	e := testEngine(0)
	e.Publish(Event{Kind: EvTarget, Ref: prod, Target: &TargetStatus{Ref: prod, Current: "v1"}})
	snap, s := e.Subscribe()
	e.Publish(Event{Kind: EvDeployment, Ref: prod, Final: true, Deployment: &Deployment{Ref: prod, Version: "v2", Weight: 25}})
	e.Publish(Event{Kind: EvErrors, Ref: prod, Errors: &ErrorWindow{Ref: prod, Release: "v2", Buckets: []ErrorBucket{{Count: 3}}}})
	e.Publish(Event{Kind: EvBackup, Ref: prod, Final: true, Backup: &Freshness{Ref: prod, Facts: BackupFacts{Set: "db"}, State: FreshWarn}})
	e.Publish(Event{Kind: EvLock, Ref: prod, Final: true, Lock: &Lock{Ref: prod, Holder: Actor{Name: "ana"}}})
	e.Publish(Event{Kind: EvLock, Ref: prod, Final: true})
	e.Publish(Event{Kind: EvOperation, Ref: prod, Final: true, Operation: &Operation{ID: "op1", State: OpRunning}})
	for _, ev := range s.Drain(nil) {
		snap.Apply(ev)
	}
	want, _ := json.Marshal(e.Snapshot())
	got, _ := json.Marshal(snap)
	if string(got) != string(want) {
		t.Fatalf("client state drifted from engine state:\n got %s\nwant %s", got, want)
	}
	if _, locked := snap.Locks[prod]; locked {
		t.Fatal("lock release did not remove the lock")
	}
}

func TestSnapshotIsACopy(t *testing.T) {
	e := testEngine(0)
	e.Publish(Event{Kind: EvErrors, Ref: prod, Errors: &ErrorWindow{Ref: prod, Release: "v2"}})
	s := e.Snapshot()
	s.Errors[prod]["v3"] = ErrorWindow{}
	if _, ok := e.Snapshot().Errors[prod]["v3"]; ok {
		t.Fatal("changing a snapshot changed the engine's state")
	}
}

func TestDoRefusesWithoutActorUnknownRefOrHandler(t *testing.T) {
	e := testEngine(0)
	ctx := context.Background()
	cases := []struct {
		cmd  Command
		want string
	}{
		{Command{Kind: CmdPause, Ref: prod}, "names no actor"},
		{Command{Kind: CmdPause, Ref: Ref{"web", "production"}, Actor: Actor{Name: "ana"}}, `unknown service "web"`},
		{Command{Kind: CmdPause, Ref: Ref{"api", "qa"}, Actor: Actor{Name: "ana"}}, `unknown environment "qa"`},
		{Command{Kind: CmdPause, Ref: prod, Actor: Actor{Name: "ana"}, Overrides: []string{"backups"}}, "needs a reason"},
		{Command{Kind: CmdPause, Ref: prod, Actor: Actor{Name: "ana"}}, "not available"},
	}
	for _, c := range cases {
		_, err := e.Do(ctx, c.cmd)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Do(%+v) = %v, want an error containing %q", c.cmd, err, c.want)
		}
	}
	if _, err := e.Do(ctx, Command{Kind: CmdPause, Ref: prod, Actor: Actor{Name: "ana"}}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("want ErrUnavailable, got %v", err)
	}
}

func TestCloseStopsDelivery(t *testing.T) {
	e := testEngine(0)
	_, s := e.Subscribe()
	s.Close()
	e.Publish(final(1))
	if _, err := s.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close = %v, want ErrClosed", err)
	}
	if e.Subscribers() != 0 {
		t.Fatalf("engine still counts %d subscribers", e.Subscribers())
	}
}

// core must know nothing of the screen or of gRPC.
func TestCoreImportsNeitherTUINorPlugins(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test", "github.com/ripcordhq/ripcord/core/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/ripcordhq/ripcord/tui", "github.com/ripcordhq/ripcord/plugins", "google.golang.org/grpc", "charm.land/"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("core depends on %s", dep)
			}
		}
	}
}

func BenchmarkPublishFourSubscribers(b *testing.B) {
	e := testEngine(4096)
	for range 4 {
		_, s := e.Subscribe()
		go func() {
			var buf []Event
			for range s.Ready() {
				buf = s.Drain(buf[:0])
			}
		}()
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e.Publish(progress(i))
	}
}
