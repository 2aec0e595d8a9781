package observe

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/spike"
)

// canaryWorld is production with v2 taking share of v1's traffic and an
// error source the test pushes windows through.
type canaryWorld struct {
	eng *core.Engine
	ob  *Observer
	sub *core.Subscription
	src *fakeErrors
	clk *clock
	// last is the latest verdict push saw.
	last core.SpikeVerdict
}

func newCanaryWorld(t testing.TB, weight int) *canaryWorld {
	t.Helper()
	clk := &clock{t: t0}
	eng := newEngine(t, clk, "production")
	w := &canaryWorld{eng: eng, src: newFakeErrors(), clk: clk}
	_, w.sub = eng.Subscribe()
	w.ob = Start(context.Background(), Options{
		Engine: eng, Errors: map[core.Ref]core.ErrorSource{prod: w.src},
		Retry: 5 * time.Millisecond, Rejudge: time.Hour, // verdicts here come from feeds only
	})
	t.Cleanup(func() { w.ob.Close(); w.sub.Close() })
	eng.Publish(core.Event{Kind: core.EvDeployment, Ref: prod, Final: true, Deployment: &core.Deployment{
		ID: 1, Ref: prod, Version: "v2", From: "v1", State: core.DeployProgressing, Weight: weight, StartedAt: t0.Add(-2 * time.Minute), ExposedAt: t0,
	}})
	waitFor(t, w.sub, "the canary's first verdict", func(ev core.Event) bool {
		return ev.Kind == core.EvVerdict && ev.Final && ev.Verdict.Candidate == "v2"
	})
	return w
}

// push hands one push to the observer and waits for the verdict that
// accounts for total errors.
func (w *canaryWorld) push(t testing.TB, p []core.ErrorWindow, total int64) core.SpikeVerdict {
	t.Helper()
	if len(p) == 0 {
		return w.last // no release has errors yet: the ingest pushes nothing
	}
	w.src.pushes <- p
	w.last = *waitFor(t, w.sub, "the verdict after a push", func(ev core.Event) bool {
		return ev.Kind == core.EvVerdict && ev.Verdict.Evidence.CandidateCount+ev.Verdict.Evidence.BaselineCount == total
	}).Verdict
	return w.last
}

func TestCanaryWithThreeTimesTheErrorsGetsSpike(t *testing.T) {
	w := newCanaryWorld(t, 25)
	sim := newErrorSim(1, prod, t0, "v2", "v1")
	const perSec = 4.0 // errors/s the whole service throws at the baseline's per-request rate
	for sim.elapsed() < 2*time.Minute {
		v := w.push(t, sim.step(perSec*0.25*3, perSec*0.75), sim.total)
		if v.Kind != core.VerdictSpike {
			continue
		}
		ev := v.Evidence
		if v.Candidate != "v2" || v.Baseline != "v1" || v.Ref != prod {
			t.Fatalf("verdict names %s vs %s in %s", v.Candidate, v.Baseline, v.Ref)
		}
		if ev.Share != 0.25 || ev.CandidateCount == 0 || ev.BaselineCount == 0 || ev.PValue >= 0.01 || ev.EvidenceRatio < ev.Threshold || ev.RateRatio <= 1 {
			t.Fatalf("spike evidence = %+v", ev)
		}
		t.Logf("spike after %s of errors: %d vs %d, p=%.2g, ratio %.1f", sim.elapsed(), ev.CandidateCount, ev.BaselineCount, ev.PValue, ev.RateRatio)
		// The change of kind was final: a slow screen cannot miss it.
		if got := w.eng.Snapshot().Verdicts[prod]; got.Kind != core.VerdictSpike {
			t.Fatalf("snapshot verdict = %s", got.Kind)
		}
		return
	}
	t.Fatalf("no spike after %s of a 3x regression", sim.elapsed())
}

func TestHealthyCanaryIsNotCalledSpike(t *testing.T) {
	w := newCanaryWorld(t, 25)
	sim := newErrorSim(2, prod, t0, "v2", "v1")
	const perSec = 4.0
	var v core.SpikeVerdict
	for sim.elapsed() < 5*time.Minute {
		v = w.push(t, sim.step(perSec*0.25, perSec*0.75), sim.total)
		if v.Kind == core.VerdictSpike {
			t.Fatalf("equal per-request rates called spike after %s: %+v", sim.elapsed(), v.Evidence)
		}
	}
	if v.Kind != core.VerdictHealthy || v.Evidence.Share != 0.25 || v.Evidence.RateRatioHigh >= 2 {
		t.Fatalf("after 5 minutes: %s with %+v, want healthy with a tight bound", v.Kind, v.Evidence)
	}
}

func TestTooFewErrorsIsInconclusive(t *testing.T) {
	w := newCanaryWorld(t, 25)
	sim := newErrorSim(3, prod, t0, "v2", "v1")
	var v core.SpikeVerdict
	for sim.total < spike.DefaultMinEvents-1 {
		// Only the candidate errs, which would be damning with enough of it.
		v = w.push(t, sim.step(2, 0), sim.total)
	}
	if v.Kind != core.VerdictInconclusive || !strings.Contains(v.Evidence.Note, "needed") {
		t.Fatalf("%d errors gave %s (%s), want inconclusive", sim.total, v.Kind, v.Evidence.Note)
	}
}

func TestUnavailableCountsAreInconclusiveNeverZero(t *testing.T) {
	w := newCanaryWorld(t, 25)
	sim := newErrorSim(4, prod, t0, "v2", "v1")
	w.push(t, sim.step(1, 3), sim.total)
	w.src.pushes <- []core.ErrorWindow{{Ref: prod, Unavailable: "counts unavailable: events-stats answered 403"}}
	ev := waitFor(t, w.sub, "the window", func(ev core.Event) bool { return ev.Kind == core.EvErrors && ev.Errors.Unavailable != "" })
	if ev.Errors.Unavailable != "counts unavailable: events-stats answered 403" || len(ev.Errors.Buckets) != 0 {
		t.Fatalf("window published as %+v, want it as the source said", ev.Errors)
	}
	v := waitFor(t, w.sub, "the verdict", func(ev core.Event) bool { return ev.Kind == core.EvVerdict }).Verdict
	if v.Kind != core.VerdictInconclusive || !strings.Contains(v.Evidence.Note, "events-stats answered 403") {
		t.Fatalf("verdict %s (%s), want inconclusive saying why", v.Kind, v.Evidence.Note)
	}
}

func TestFullRolloutIsComparedWithThePreviousRelease(t *testing.T) {
	clk := &clock{t: t0}
	eng := newEngine(t, clk, "production")
	src := newFakeErrors()
	_, sub := eng.Subscribe()
	defer sub.Close()
	ob := Start(context.Background(), Options{Engine: eng, Errors: map[core.Ref]core.ErrorSource{prod: src}, Rejudge: time.Hour})
	defer ob.Close()

	// v1 alone for five minutes before the switch at t0, then v2 alone.
	before := core.ErrorWindow{Ref: prod, Release: "v1"}
	for i := -30; i < 0; i++ {
		before.Buckets = append(before.Buckets, core.ErrorBucket{Start: t0.Add(time.Duration(i) * 10 * time.Second), Count: 4})
	}
	src.pushes <- []core.ErrorWindow{before}
	clk.Set(t0.Add(5 * time.Minute))
	eng.Publish(core.Event{Kind: core.EvDeployment, Ref: prod, Final: true, Deployment: &core.Deployment{
		ID: 2, Ref: prod, Version: "v2", From: "v1", State: core.DeployHealthy, Weight: 100, StartedAt: t0, FinishedAt: t0,
	}})
	after := core.ErrorWindow{Ref: prod, Release: "v2"}
	for i := range 30 {
		after.Buckets = append(after.Buckets, core.ErrorBucket{Start: t0.Add(time.Duration(i) * 10 * time.Second), Count: 12})
	}
	src.pushes <- []core.ErrorWindow{after}
	v := waitFor(t, sub, "a spike verdict", func(ev core.Event) bool {
		return ev.Kind == core.EvVerdict && ev.Verdict.Kind == core.VerdictSpike
	}).Verdict
	e := v.Evidence
	if v.Candidate != "v2" || v.Baseline != "v1" || e.CandidateCount != 360 || e.BaselineCount != 120 || e.Share != 0.5 || !strings.Contains(e.Note, "after the full rollout") {
		t.Fatalf("post-rollout verdict = %+v", v)
	}
}

// Feeding an open bucket's new errors part by part must give the monitor
// exactly what feeding the closed bucket once would.
func TestFeedingPartsOfBucketsEqualsWholeBuckets(t *testing.T) {
	whole := spike.NewMonitor(prod, "v2", "v1", spike.Policy{}, t0)
	parts := spike.NewMonitor(prod, "v2", "v1", spike.Policy{}, t0)
	sim := newErrorSim(5, prod, t0, "v2", "v1")
	shares := []float64{0.1, 0.25, 0.5}
	var fedC, fedB []int64
	for sim.elapsed() < 3*time.Minute {
		sim.step(1.5, 2.5)
		share := shares[int(sim.elapsed()/time.Minute)%len(shares)]
		c, b := sim.counts["v2"], sim.counts["v1"]
		for len(fedC) < len(c) || len(fedB) < len(b) {
			fedC, fedB = append(fedC, 0), append(fedB, 0)
		}
		for i := range max(len(c), len(b)) {
			dc, db := at(c, i)-fedC[i], at(b, i)-fedB[i]
			if dc+db > 0 {
				parts.Observe(spike.Bucket{Start: t0.Add(time.Duration(i) * 10 * time.Second), Share: share, Candidate: dc, Baseline: db})
				fedC[i], fedB[i] = fedC[i]+dc, fedB[i]+db
			}
		}
	}
	// The whole-bucket monitor gets each bucket's parts summed per share.
	partsEv := parts.Verdict(t0.Add(3 * time.Minute)).Evidence
	sim2 := newErrorSim(5, prod, t0, "v2", "v1")
	type key struct {
		i     int
		share float64
	}
	sums := map[key][2]int64{}
	var order []key
	for sim2.elapsed() < 3*time.Minute {
		bc, bb := snapshotCounts(sim2)
		sim2.step(1.5, 2.5)
		share := shares[int(sim2.elapsed()/time.Minute)%len(shares)]
		c, b := sim2.counts["v2"], sim2.counts["v1"]
		for i := range max(len(c), len(b)) {
			k := key{i, share}
			if _, ok := sums[k]; !ok {
				order = append(order, k)
			}
			s := sums[k]
			s[0] += at(c, i) - at(bc, i)
			s[1] += at(b, i) - at(bb, i)
			sums[k] = s
		}
	}
	for _, k := range order {
		whole.Observe(spike.Bucket{Start: t0.Add(time.Duration(k.i) * 10 * time.Second), Share: k.share, Candidate: sums[k][0], Baseline: sums[k][1]})
	}
	wholeEv := whole.Verdict(t0.Add(3 * time.Minute)).Evidence
	if partsEv.CandidateCount != wholeEv.CandidateCount || partsEv.BaselineCount != wholeEv.BaselineCount ||
		math.Abs(math.Log(partsEv.EvidenceRatio/wholeEv.EvidenceRatio)) > 1e-9 || math.Abs(partsEv.Share-wholeEv.Share) > 1e-12 {
		t.Fatalf("parts gave %+v, whole buckets %+v", partsEv, wholeEv)
	}
	if partsEv.CandidateCount == 0 || partsEv.BaselineCount == 0 {
		t.Fatal("the simulation produced no errors")
	}
}

func at(c []int64, i int) int64 {
	if i < len(c) {
		return c[i]
	}
	return 0
}

func snapshotCounts(s *errorSim) (cand, base []int64) {
	return append([]int64(nil), s.counts["v2"]...), append([]int64(nil), s.counts["v1"]...)
}

// BenchmarkBurstToSpikeVerdict measures, per error rate, the processing
// from the first window of a burst (v2 at 25% with three times v1's
// per-request error rate) to the SPIKE verdict on an engine subscription,
// windows pushed as the ingest does every 250 ms of simulated time. The
// sim-s metric is the simulated seconds of error data the verdict needed.
func BenchmarkBurstToSpikeVerdict(b *testing.B) {
	for _, perSec := range []float64{2, 5, 10} {
		b.Run(strings.TrimSuffix(strings.TrimSuffix(time.Duration(perSec*float64(time.Second)).String(), "s"), ".0")+"err-per-s", func(b *testing.B) {
			var simulated time.Duration
			var seed uint64
			pushes := 0
			for b.Loop() {
				b.StopTimer()
				w := newCanaryWorld(b, 25)
				seed++
				sim := newErrorSim(seed, prod, t0, "v2", "v1")
				b.StartTimer()
				for {
					v := w.push(b, sim.step(perSec*0.25*3, perSec*0.75), sim.total)
					if v.Kind == core.VerdictSpike {
						break
					}
					if sim.elapsed() > 10*time.Minute {
						b.Fatal("no spike after 10 minutes")
					}
				}
				b.StopTimer()
				simulated += sim.elapsed()
				pushes += sim.steps
				w.ob.Close()
				w.sub.Close()
				b.StartTimer()
			}
			b.ReportMetric(simulated.Seconds()/float64(b.N), "sim-s/verdict")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(pushes), "ns/push")
		})
	}
}

// A target that moves whole hosts gives the candidate the share of the
// hosts it moved, not the weight asked for (10% of four hosts is one host,
// 25%). Judged at the share it really has, a healthy candidate is healthy;
// judged at 10% it would look like a 2.5x regression.
func TestCanaryIsJudgedAtTheShareTheTargetReports(t *testing.T) {
	w := newCanaryWorld(t, 10)
	w.eng.Publish(core.Event{Kind: core.EvTarget, Ref: prod, Final: true, Target: &core.TargetStatus{
		Ref: prod, Current: "v1", Candidate: "v2", Weight: 25, Healthy: true,
	}})
	sim := newErrorSim(3, prod, t0, "v2", "v1")
	const perSec = 4.0
	var v core.SpikeVerdict
	for sim.elapsed() < 5*time.Minute {
		v = w.push(t, sim.step(perSec*0.25, perSec*0.75), sim.total)
		if v.Kind == core.VerdictSpike {
			t.Fatalf("a healthy candidate on 1 of 4 hosts was called spike after %s: %+v", sim.elapsed(), v.Evidence)
		}
	}
	if v.Kind != core.VerdictHealthy || v.Evidence.Share != 0.25 {
		t.Fatalf("after 5 minutes: %s at share %.2f, want healthy at 0.25", v.Kind, v.Evidence.Share)
	}
}
