package observe

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// exposureWorld is production watched by an observer whose error source
// the test pushes windows through, with the engine's clock in its hands.
type exposureWorld struct {
	ob  *Observer
	eng *core.Engine
	src *fakeErrors
	clk *clock
	sub *core.Subscription
}

func newExposureWorld(t *testing.T, o Options) *exposureWorld {
	t.Helper()
	clk := &clock{t: t0.Add(-10 * time.Minute)}
	eng := newEngine(t, clk, "production")
	w := &exposureWorld{eng: eng, src: newFakeErrors(), clk: clk}
	_, w.sub = eng.Subscribe()
	o.Engine, o.Errors, o.Rejudge = eng, map[core.Ref]core.ErrorSource{prod: w.src}, time.Hour
	w.ob = Start(context.Background(), o)
	t.Cleanup(func() { w.ob.Close(); w.sub.Close() })
	return w
}

// push hands windows to the observer and returns once it has taken them
// (the fake's channel is unbuffered: the next send waits for the loop).
func (w *exposureWorld) push(ws ...core.ErrorWindow) {
	w.src.pushes <- ws
	w.src.pushes <- nil
}

// window is one release's counts, bucket i starting at t0 + i·10 s.
func window(rel string, counts map[int]int64) core.ErrorWindow {
	w := core.ErrorWindow{Ref: prod, Release: rel}
	lo, hi := 0, 0
	for i := range counts {
		lo, hi = min(lo, i), max(hi, i)
	}
	for i := lo; i <= hi; i++ {
		w.Buckets = append(w.Buckets, core.ErrorBucket{Start: t0.Add(time.Duration(i) * 10 * time.Second), Count: counts[i]})
	}
	return w
}

// deploy publishes the canary's deployment and waits until the observer
// judges at its weight.
func (w *exposureWorld) deploy(t *testing.T, d core.Deployment) {
	t.Helper()
	d.Ref, d.Version, d.From, d.State = prod, "v2", "v1", core.DeployProgressing
	w.eng.Publish(core.Event{Kind: core.EvDeployment, Ref: prod, Final: true, Deployment: &d})
	s := w.ob.errs[prod]
	waitUntil(t, "the observer to follow the deployment", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.can != nil && s.can.live && s.can.share == float64(d.Weight)/100
	})
}

// verdictWith waits for the verdict whose evidence counts total errors.
func (w *exposureWorld) verdictWith(t *testing.T, total int64) core.SpikeVerdict {
	t.Helper()
	return *waitFor(t, w.sub, "the verdict", func(ev core.Event) bool {
		return ev.Kind == core.EvVerdict && ev.Verdict.Candidate == "v2" && ev.Verdict.Evidence.CandidateCount+ev.Verdict.Evidence.BaselineCount == total
	}).Verdict
}

// Errors while the candidate installs and health-checks — the baseline's,
// and the candidate's own start-up errors — are never evidence: the
// canary starts when the target has shifted traffic. The baseline's errors
// before then are the history the verdict learns the usual rate from.
func TestDeployTimeIsNeverEvidence(t *testing.T) {
	w := newExposureWorld(t, Options{})
	hist := map[int]int64{}
	for i := -60; i < 0; i++ {
		hist[i] = 1 // 6 errors a minute, before and during the deploy
	}
	w.push(window("v1", hist), window("v2", map[int]int64{-6: 5}))
	w.clk.Set(t0)
	w.deploy(t, core.Deployment{ID: 1, Weight: 25, StartedAt: t0.Add(-2 * time.Minute), ExposedAt: t0})
	w.clk.Set(t0.Add(10 * time.Second))
	hist[0] = 3
	w.push(window("v1", hist), window("v2", map[int]int64{-6: 5, 0: 1}))
	v := w.verdictWith(t, 4)
	ev := v.Evidence
	if ev.CandidateCount != 1 || ev.BaselineCount != 3 || ev.Elapsed != 10*time.Second {
		t.Fatalf("evidence %d vs %d after %v; want 1 vs 3 after 10s: nothing from before exposure", ev.CandidateCount, ev.BaselineCount, ev.Elapsed)
	}
	// The history gave the rate: the verdict can say how much longer.
	if ev.NeedsMore <= 0 {
		t.Fatalf("no estimate of the time still needed: %q", ev.Note)
	}
}

// Exposure in the middle of a bucket: a live source has already shown the
// bucket's earlier errors, and only those that come after count.
func TestExposureBucketIsClippedForALiveSource(t *testing.T) {
	w := newExposureWorld(t, Options{})
	w.clk.Set(t0.Add(6 * time.Second))
	w.push(window("v1", map[int]int64{-1: 1, 0: 4}))
	w.deploy(t, core.Deployment{ID: 1, Weight: 25, StartedAt: t0.Add(-time.Minute), ExposedAt: t0.Add(6 * time.Second)})
	w.clk.Set(t0.Add(9 * time.Second))
	w.push(window("v1", map[int]int64{-1: 1, 0: 5}), window("v2", map[int]int64{0: 1}))
	if ev := w.verdictWith(t, 2).Evidence; ev.CandidateCount != 1 || ev.BaselineCount != 1 {
		t.Fatalf("evidence %d vs %d, want 1 vs 1: the 4 errors before exposure are not evidence", ev.CandidateCount, ev.BaselineCount)
	}
}

// A source that has not reported lately (a poller) cannot split the
// exposure bucket: it is left out, and evidence starts with the next one.
func TestExposureBucketIsSkippedForASourceThatIsNotLive(t *testing.T) {
	w := newExposureWorld(t, Options{})
	w.clk.Set(t0.Add(6 * time.Second))
	w.deploy(t, core.Deployment{ID: 1, Weight: 25, StartedAt: t0.Add(-time.Minute), ExposedAt: t0.Add(6 * time.Second)})
	w.clk.Set(t0.Add(70 * time.Second))
	w.push(window("v1", map[int]int64{0: 5, 1: 1}), window("v2", map[int]int64{0: 1, 1: 2}))
	if ev := w.verdictWith(t, 3).Evidence; ev.CandidateCount != 2 || ev.BaselineCount != 1 {
		t.Fatalf("evidence %d vs %d, want 2 vs 1 from the bucket after exposure", ev.CandidateCount, ev.BaselineCount)
	}
}

// A weight step mid-canary: errors before it were judged at the old share,
// those after at the new one.
func TestEachBucketCarriesTheShareInForce(t *testing.T) {
	w := newExposureWorld(t, Options{})
	w.clk.Set(t0)
	w.deploy(t, core.Deployment{ID: 1, Weight: 25, StartedAt: t0.Add(-time.Minute), ExposedAt: t0})
	w.clk.Set(t0.Add(10 * time.Second))
	w.push(window("v1", map[int]int64{0: 6}), window("v2", map[int]int64{0: 2}))
	w.verdictWith(t, 8)
	w.deploy(t, core.Deployment{ID: 1, Weight: 50, StartedAt: t0.Add(-time.Minute), ExposedAt: t0})
	w.clk.Set(t0.Add(20 * time.Second))
	w.push(window("v1", map[int]int64{0: 6, 1: 4}), window("v2", map[int]int64{0: 2, 1: 4}))
	ev := w.verdictWith(t, 16).Evidence
	// The error-weighted share: 8 errors at 25%, 8 at 50%.
	if ev.Share != 0.375 || !strings.Contains(ev.Note, "share varied 25%–50%") {
		t.Fatalf("share %v (%s), want 0.375 with the step named", ev.Share, ev.Note)
	}
}

// spike.window sets how long a release is compared with the one it
// replaced after a full rollout.
func TestPostRolloutWindowIsTheEnvironments(t *testing.T) {
	w := newExposureWorld(t, Options{Windows: map[core.Ref]time.Duration{prod: time.Minute}})
	before := map[int]int64{}
	for i := -30; i < 0; i++ {
		before[i] = 4
	}
	w.push(window("v1", before))
	w.clk.Set(t0.Add(65 * time.Second))
	w.eng.Publish(core.Event{Kind: core.EvDeployment, Ref: prod, Final: true, Deployment: &core.Deployment{
		ID: 2, Ref: prod, Version: "v2", From: "v1", State: core.DeployHealthy, Weight: 100, StartedAt: t0, ExposedAt: t0, FinishedAt: t0,
	}})
	after := map[int]int64{}
	for i := range 30 {
		after[i] = 4
	}
	w.push(window("v1", before), window("v2", after))
	v := waitFor(t, w.sub, "the comparison", func(ev core.Event) bool {
		return ev.Kind == core.EvVerdict && ev.Verdict.Candidate == "v2" && ev.Verdict.Evidence.CandidateCount > 0
	}).Verdict
	if ev := v.Evidence; ev.CandidateCount != 24 || ev.BaselineCount != 24 || !strings.Contains(ev.Note, "in the 1m0s after the switch") {
		t.Fatalf("comparison %d vs %d (%s), want one minute on each side", ev.CandidateCount, ev.BaselineCount, ev.Note)
	}
}
