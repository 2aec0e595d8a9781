package observe

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

var t0 = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

// clock is the engine's clock, moved by the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func newEngine(t testing.TB, clk *clock, envs ...string) *core.Engine {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	o := core.EngineOptions{Project: "shop", Services: []string{"api"}, Envs: envs, Store: st}
	if clk != nil {
		o.Clock = clk.Now
	}
	return core.NewEngine(o)
}

// waitFor reads sub until pred holds, failing after a deadline.
func waitFor(t testing.TB, sub *core.Subscription, what string, pred func(core.Event) bool) core.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if pred(ev) {
			return ev
		}
	}
}

// waitUntil polls a condition until it holds, failing after a deadline.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: deadline passed", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// quiesce waits until the automation has acted on every event up to seq
// and no promotion it started is still running.
func quiesce(t testing.TB, ob *Observer, seq uint64) {
	t.Helper()
	ob.auto.poke()
	waitUntil(t, "automation to settle", func() bool { return ob.auto.handled.Load() >= seq && ob.auto.busy() == 0 })
}

// fakeTarget is a deploy target in memory that reports every change.
type fakeTarget struct {
	mu         sync.Mutex
	st         core.TargetStatus
	changed    chan struct{} // closed and replaced on every change
	failWatch  int           // WatchStatus fails this many times first
	watchCalls int
	deploys    []string
}

func newFakeTarget(current string) *fakeTarget {
	return &fakeTarget{st: core.TargetStatus{Current: current, Healthy: true, Weight: 0}, changed: make(chan struct{})}
}

func (f *fakeTarget) set(fn func(*core.TargetStatus)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.st)
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeTarget) Status(context.Context, core.Ref) (core.TargetStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st, nil
}

func (f *fakeTarget) WatchStatus(ctx context.Context, _ core.Ref, fn func(core.TargetStatus)) error {
	f.mu.Lock()
	f.watchCalls++
	if f.failWatch > 0 {
		f.failWatch--
		f.mu.Unlock()
		return errors.New("target agent: connection refused")
	}
	f.mu.Unlock()
	for {
		f.mu.Lock()
		st, ch := f.st, f.changed
		f.mu.Unlock()
		fn(st)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func (f *fakeTarget) calls() (watch int, deploys []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.watchCalls, append([]string(nil), f.deploys...)
}

func (f *fakeTarget) Deploy(_ context.Context, _ core.OpRequest, rel core.Release, w int, _ func(core.OpEvent)) error {
	f.mu.Lock()
	f.deploys = append(f.deploys, rel.Version)
	f.mu.Unlock()
	f.set(func(s *core.TargetStatus) {
		s.Candidate, s.Weight = rel.Version, w
		if w == 100 {
			s.Current, s.Candidate = rel.Version, ""
		}
	})
	return nil
}

func (f *fakeTarget) SetWeight(_ context.Context, _ core.OpRequest, w int, _ func(core.OpEvent)) error {
	f.set(func(s *core.TargetStatus) {
		s.Weight = w
		if w == 100 {
			s.Current, s.Candidate = s.Candidate, ""
		}
	})
	return nil
}

func (f *fakeTarget) Rollback(_ context.Context, _ core.OpRequest, to string, _ func(core.OpEvent)) error {
	f.set(func(s *core.TargetStatus) { s.Current, s.Candidate, s.Weight = to, "", 0 })
	return nil
}

func (f *fakeTarget) WatchOperation(context.Context, core.OpRequest, string, func(core.OpEvent)) error {
	return nil
}

// fakePipeline reports a fixed history, then the runs sent on runs.
type fakePipeline struct {
	history []core.PipelineRun
	runs    chan core.PipelineRun
}

func (f *fakePipeline) Runs(context.Context, string, int) ([]core.PipelineRun, error) {
	return f.history, nil
}

func (f *fakePipeline) WatchRuns(ctx context.Context, _ string, fn func(core.PipelineRun)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case r := <-f.runs:
			fn(r)
		}
	}
}

func (f *fakePipeline) Logs(context.Context, string, string, bool, func(core.LogLine)) error {
	return nil
}
func (f *fakePipeline) Trigger(context.Context, string, string, string) (string, error) {
	return "", nil
}
func (f *fakePipeline) Cancel(context.Context, string) error { return nil }

// fakeErrors hands each push (all releases' windows at one moment) to the
// watch, the way an ingest does.
type fakeErrors struct{ pushes chan []core.ErrorWindow }

func newFakeErrors() *fakeErrors { return &fakeErrors{pushes: make(chan []core.ErrorWindow)} }

func (f *fakeErrors) WatchCounts(ctx context.Context, _ core.Ref, fn func(core.ErrorWindow)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case p := <-f.pushes:
			for _, w := range p {
				fn(w)
			}
		}
	}
}
func (f *fakeErrors) Issues(context.Context, core.Ref, string) ([]core.ErrorIssue, error) {
	return nil, nil
}
func (f *fakeErrors) MarkDeploy(context.Context, core.Ref, string) error { return nil }

// fakeBackups reports the facts sent on facts, or fails with err. A
// verify records when it ran (verifiedAt, from the test's clock) and is
// counted.
type fakeBackups struct {
	facts    chan core.BackupFacts
	err      error
	clock    *clock
	verifies atomic.Int32
}

func (f *fakeBackups) WatchFreshness(ctx context.Context, fn func(core.BackupFacts)) error {
	if f.err != nil {
		return f.err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case x := <-f.facts:
			fn(x)
		}
	}
}
func (f *fakeBackups) Verify(_ context.Context, set string) (core.BackupFacts, error) {
	f.verifies.Add(1)
	now := f.clock.Now()
	return core.BackupFacts{Set: set, Tool: "restic", LastEnd: now.Add(-time.Minute), ReportedAt: now, VerifiedAt: now, VerifyOK: true}, nil
}
func (f *fakeBackups) RunNow(context.Context, string) error { return nil }

// errorSim makes the error windows an ingest pushes every 250 ms during a
// canary: cumulative counts in dense 10 s buckets, each release's window
// sent only once it has errors, as the ingest does.
type errorSim struct {
	rng        *rand.Rand
	ref        core.Ref
	start      time.Time
	steps      int
	cand, base string
	counts     map[string][]int64
	total      int64
}

func newErrorSim(seed uint64, ref core.Ref, start time.Time, cand, base string) *errorSim {
	return &errorSim{rng: rand.New(rand.NewPCG(seed, 7)), ref: ref, start: start, cand: cand, base: base, counts: map[string][]int64{}}
}

const simStep = 250 * time.Millisecond

// step advances 250 ms with the given errors per second from each release
// and returns the push.
func (s *errorSim) step(candPerSec, basePerSec float64) []core.ErrorWindow {
	i := int(time.Duration(s.steps) * simStep / (10 * time.Second))
	s.steps++
	for _, r := range []struct {
		rel  string
		rate float64
	}{{s.cand, candPerSec}, {s.base, basePerSec}} {
		rel, rate := r.rel, r.rate
		c := s.counts[rel]
		for len(c) <= i {
			c = append(c, 0)
		}
		n := poisson(s.rng, rate*simStep.Seconds())
		c[i] += n
		s.total += n
		s.counts[rel] = c
	}
	return s.push()
}

func (s *errorSim) push() []core.ErrorWindow {
	var out []core.ErrorWindow
	for _, rel := range []string{s.base, s.cand} {
		c := s.counts[rel]
		var sum int64
		for _, n := range c {
			sum += n
		}
		if sum == 0 {
			continue
		}
		w := core.ErrorWindow{Ref: s.ref, Release: rel}
		for i, n := range c {
			w.Buckets = append(w.Buckets, core.ErrorBucket{Start: s.start.Add(time.Duration(i) * 10 * time.Second), Count: n})
		}
		out = append(out, w)
	}
	return out
}

func (s *errorSim) elapsed() time.Duration { return time.Duration(s.steps) * simStep }

func poisson(rng *rand.Rand, lambda float64) int64 {
	l, k, p := math.Exp(-lambda), int64(0), 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}
