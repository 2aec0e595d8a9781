package runbook

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// run is a source's run as the sources declare theirs.
type run struct {
	Run
	note string
}

var t0 = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

func view(id, service string, started time.Time, state core.RunState) core.PipelineRun {
	return core.PipelineRun{ID: id, Service: service, State: state, StartedAt: started, Stages: []core.Stage{
		{Name: "build", State: state, Steps: []core.Step{{Name: "compile", State: state, StartedAt: started}}},
	}}
}

// watch starts b.Watch and returns what it sends, and a stop that waits
// for Watch to return and gives its error.
func watch(t *testing.T, mu *sync.Mutex, b *Book[string, *run], service string) (<-chan core.PipelineRun, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan core.PipelineRun, 16)
	done := make(chan error, 1)
	go func() { done <- b.Watch(ctx, mu, service, func(r core.PipelineRun) { got <- r }) }()
	return got, func() error { cancel(); return <-done }
}

func next(t *testing.T, got <-chan core.PipelineRun) core.PipelineRun {
	t.Helper()
	select {
	case r := <-got:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher was sent nothing")
		return core.PipelineRun{}
	}
}

func none(t *testing.T, got <-chan core.PipelineRun) {
	t.Helper()
	select {
	case r := <-got:
		t.Fatalf("the watcher was sent %s (%s), want nothing", r.ID, r.State)
	case <-time.After(50 * time.Millisecond):
	}
}

func put(mu *sync.Mutex, b *Book[string, *run], r *run, info core.PipelineRun) {
	mu.Lock()
	defer mu.Unlock()
	b.Put(info.ID, r)
	b.Update(r, info)
}

// A watcher is sent every published run of its service in the order they
// started (the one changed first first when they started together), then
// a run again each time it changes; a run kept but not yet published, and
// an update that shows nothing new, send nothing.
func TestWatchSendsRunsInStartOrderThenEachChange(t *testing.T) {
	var mu sync.Mutex
	b := New[string, *run](Same)
	late, early, tie, other := &run{}, &run{}, &run{}, &run{}
	put(&mu, b, late, view("late", "api", t0.Add(time.Minute), core.RunRunning))
	put(&mu, b, early, view("early", "api", t0, core.RunSucceeded))
	put(&mu, b, tie, view("tie", "api", t0.Add(time.Minute), core.RunQueued))
	put(&mu, b, other, view("other", "web", t0, core.RunRunning))
	mu.Lock()
	b.Put("unpublished", &run{})
	mu.Unlock()

	got, stop := watch(t, &mu, b, "api")
	for _, want := range []string{"early", "late", "tie"} {
		if r := next(t, got); r.ID != want {
			t.Fatalf("sent %s, want %s", r.ID, want)
		}
	}
	none(t, got)

	put(&mu, b, late, view("late", "api", t0.Add(time.Minute), core.RunRunning)) // the same again
	none(t, got)
	put(&mu, b, late, view("late", "api", t0.Add(time.Minute), core.RunFailed))
	if r := next(t, got); r.ID != "late" || r.State != core.RunFailed {
		t.Fatalf("sent %s (%s), want late failed", r.ID, r.State)
	}
	put(&mu, b, other, view("other", "web", t0, core.RunFailed)) // another service's
	none(t, got)
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Watch returned %v, want context.Canceled", err)
	}
}

// A run's first update is published even when its view equals the zero
// view: a new run is always news.
func TestFirstUpdateIsAlwaysPublished(t *testing.T) {
	var mu sync.Mutex
	b := New[string, *run](func(a, b core.PipelineRun) bool { return true })
	r := &run{}
	put(&mu, b, r, core.PipelineRun{ID: "1", Service: "api"})
	got, stop := watch(t, &mu, b, "api")
	if s := next(t, got); s.ID != "1" {
		t.Fatalf("sent %s, want 1", s.ID)
	}
	put(&mu, b, r, core.PipelineRun{ID: "1", Service: "api", State: core.RunFailed}) // same says nothing changed
	none(t, got)
	_ = stop()
}

// A watcher gets a copy: what it does to the run it was sent is not the
// book's, and what the source publishes later is not in what was sent.
func TestWatcherGetsACopy(t *testing.T) {
	var mu sync.Mutex
	b := New[string, *run](Same)
	r := &run{note: "source's own"}
	put(&mu, b, r, view("1", "api", t0, core.RunRunning))
	got, stop := watch(t, &mu, b, "api")
	sent := next(t, got)
	sent.Stages[0].Steps[0].State = core.RunCanceled
	sent.Stages[0].State = core.RunCanceled
	mu.Lock()
	if s := r.Info.Stages[0]; s.State != core.RunRunning || s.Steps[0].State != core.RunRunning {
		t.Errorf("the watcher changed the book's run: %+v", s)
	}
	r.Info.Stages[0].Steps[0].Name = "changed in place"
	mu.Unlock()
	if sent.Stages[0].Steps[0].Name != "compile" {
		t.Errorf("the sent run shares its steps with the book's")
	}
	_ = stop()
	if r.note != "source's own" {
		t.Errorf("the book touched the source's fields")
	}
}

// List gives copies of the service's runs, the newest started first, at
// most limit (all with limit 0), nil when there are none.
func TestListNewestStartedFirst(t *testing.T) {
	var mu sync.Mutex
	b := New[string, *run](Same)
	starts := map[string]time.Duration{"a": 0, "b": time.Minute, "c": 2 * time.Minute, "d": 3 * time.Minute}
	for _, id := range []string{"b", "d", "a", "c"} {
		put(&mu, b, &run{}, view(id, "api", t0.Add(starts[id]), core.RunSucceeded))
	}
	put(&mu, b, &run{}, view("x", "web", t0.Add(time.Hour), core.RunSucceeded))
	ids := func(runs []core.PipelineRun) (out []string) {
		for _, r := range runs {
			out = append(out, r.ID)
		}
		return out
	}
	if got := ids(b.List("api", 0)); len(got) != 4 || got[0] != "d" || got[1] != "c" || got[2] != "b" || got[3] != "a" {
		t.Errorf("List = %v, want [d c b a]", got)
	}
	if got := ids(b.List("api", 2)); len(got) != 2 || got[0] != "d" || got[1] != "c" {
		t.Errorf("List limit 2 = %v, want [d c]", got)
	}
	if got := b.List("db", 0); got != nil {
		t.Errorf("List of a service without runs = %v, want nil", got)
	}
	listed := b.List("api", 1)[0]
	listed.Stages[0].Steps[0].State = core.RunFailed
	d, _ := b.Get("d")
	if d.Info.Stages[0].Steps[0].State != core.RunSucceeded {
		t.Error("a listed run shares its steps with the book's")
	}
	if b.Len() != 5 {
		t.Errorf("Len = %d, want 5", b.Len())
	}
	n := 0
	for range b.All() {
		n++
	}
	if n != 5 {
		t.Errorf("All yielded %d runs, want 5", n)
	}
}

// A zero Feed numbers changes from 1, and its watchers wake at each.
func TestFeedZeroValue(t *testing.T) {
	var mu sync.Mutex
	var f Feed
	seenBy := make(chan int64, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- f.Watch(ctx, &mu, func(seen int64) []core.PipelineRun {
			seenBy <- seen
			return nil
		}, func(core.PipelineRun) {})
	}()
	if s := <-seenBy; s != 0 {
		t.Fatalf("first pending saw %d, want 0", s)
	}
	mu.Lock()
	if rev := f.Publish(); rev != 1 {
		t.Errorf("first Publish = %d, want 1", rev)
	}
	mu.Unlock()
	select {
	case s := <-seenBy:
		if s != 0 && s != 1 {
			t.Errorf("pending after a change saw %d", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher did not wake at a change")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch returned %v", err)
	}
}

// Same looks at state, release and stages with their steps' states and
// times, not at the run's own start and finish.
func TestSame(t *testing.T) {
	a := view("1", "api", t0, core.RunRunning)
	b := Clone(a)
	b.StartedAt, b.FinishedAt = t0.Add(time.Hour), t0.Add(2*time.Hour)
	if !Same(a, b) {
		t.Error("runs differing only in start and finish are not the same")
	}
	b = Clone(a)
	b.Stages[0].Steps[0].StartedAt = t0.Add(time.Second)
	if Same(a, b) {
		t.Error("a step's start is not noticed")
	}
	b = Clone(a)
	b.ArtifactDigest = "sha256:ab"
	if Same(a, b) {
		t.Error("the release is not noticed")
	}
	b = Clone(a)
	b.Stages = append(b.Stages, core.Stage{Name: "deploy"})
	if Same(a, b) {
		t.Error("a new stage is not noticed")
	}
}
