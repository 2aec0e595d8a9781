package spike

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"pgregory.net/rapid"
)

// drawBuckets draws buckets with the given share (or, with share 0, a
// share per bucket from the rollout steps).
func drawBuckets(t *rapid.T, share float64, maxCount int64) []Bucket {
	n := rapid.IntRange(0, 25).Draw(t, "buckets") // under minLearned: no cap
	bs := make([]Bucket, n)
	for i := range bs {
		w := share
		if w == 0 {
			w = rapid.SampledFrom([]float64{0.1, 0.25, 0.5}).Draw(t, "share")
		}
		bs[i] = Bucket{
			Start:     at(i),
			Share:     w,
			Candidate: rapid.Int64Range(0, maxCount).Draw(t, "c"),
			Baseline:  rapid.Int64Range(0, maxCount).Draw(t, "b"),
		}
	}
	return bs
}

func TestNoDataIsInconclusive(t *testing.T) {
	m := newTestMonitor(Policy{})
	// Buckets at share 0 or 1, empty buckets and negative counts carry no
	// information.
	m.Observe(Bucket{Start: at(0), Share: 0, Baseline: 50})
	m.Observe(Bucket{Start: at(1), Share: 1, Candidate: 50})
	m.Observe(Bucket{Start: at(2), Share: 0.25})
	m.Observe(Bucket{Start: at(3), Share: 0.25, Candidate: -3, Baseline: 5})
	v := m.Verdict(at(4))
	ev := v.Evidence
	if v.Kind != core.VerdictInconclusive || ev.EvidenceRatio != 1 || ev.CandidateCount+ev.BaselineCount != 0 || ev.RateRatioHigh != Unbounded {
		t.Fatalf("verdict without errors = %s %+v, want inconclusive, evidence ratio 1, unbounded", v.Kind, ev)
	}
	if !strings.Contains(ev.Note, "cannot be bounded yet") {
		t.Fatalf("note %q does not say the ratio cannot be bounded", ev.Note)
	}
}

// What every verdict promises, on arbitrary counts without history (so no
// cap and no dispersion applies): the counts are what was fed, the
// evidence ratio is the prior-weighted mixture of the likelihood ratios
// computed directly, SPIKE is exactly a crossing of 1/alpha at some
// bucket, and HEALTHY exactly when the upper bound (on a 5% grid, rounded
// up) is at or below the tolerance.
func TestMonitorProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := drawBuckets(t, 0, 20)
		m := newTestMonitor(Policy{})
		var c, b int64
		crossed := false
		for _, x := range bs {
			m.Observe(x)
			c += x.Candidate
			b += x.Baseline
			if c+b >= DefaultMinEvents && m.EvidenceRatio() >= 1/DefaultAlpha {
				crossed = true
			}
		}
		v := m.Verdict(at(len(bs)))
		ev := v.Evidence
		if ev.CandidateCount != c || ev.BaselineCount != b {
			t.Fatalf("evidence counts %d/%d, observed %d/%d", ev.CandidateCount, ev.BaselineCount, c, b)
		}
		if !(ev.PValue >= 0 && ev.PValue <= 1) || ev.Threshold != 100 || ev.Tolerance != DefaultTolerance {
			t.Fatalf("p-value %v, threshold %v, tolerance %v", ev.PValue, ev.Threshold, ev.Tolerance)
		}
		if !(ev.RateRatioLow <= ev.RateRatioHigh) {
			t.Fatalf("bounds [%v, %v] are inverted", ev.RateRatioLow, ev.RateRatioHigh)
		}
		if _, err := json.Marshal(v); err != nil {
			t.Fatalf("verdict does not encode: %v", err)
		}
		if got := v.Kind == core.VerdictSpike; got != crossed {
			t.Fatalf("spike = %v, but the crossings say %v", got, crossed)
		}
		if v.Kind == core.VerdictHealthy && !(ev.RateRatioHigh <= ev.Tolerance) {
			t.Fatalf("HEALTHY with upper bound %v, tolerance %v", ev.RateRatioHigh, ev.Tolerance)
		}
		if v.Kind == core.VerdictInconclusive && ev.RateRatioHigh < ev.Tolerance && c+b >= DefaultMinEvents {
			t.Fatalf("INCONCLUSIVE with upper bound %v below the tolerance", ev.RateRatioHigh)
		}
		if m.tempered {
			return // the counts looked clustered: each weighed less, see robust.go
		}
		var mix float64
		for _, a := range DefaultAlternatives {
			lr := 1.0
			for _, x := range bs {
				p := x.Share * a.Factor / (x.Share*a.Factor + 1 - x.Share)
				lr *= math.Pow(p/x.Share, float64(x.Candidate)) * math.Pow((1-p)/(1-x.Share), float64(x.Baseline))
			}
			mix += a.Weight * lr
		}
		if !closeRel(ev.EvidenceRatio, mix, 1e-9) {
			t.Fatalf("evidence ratio %v, direct mixture %v", ev.EvidenceRatio, mix)
		}

	})
}

// Feeding a bucket in parts gives the evidence of feeding it whole, in any
// order of parts, when no cap applies.
func TestPartsOfABucketAddUp(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := rapid.SampledFrom([]float64{0.1, 0.25, 0.5}).Draw(t, "share")
		n := rapid.IntRange(1, 10).Draw(t, "buckets")
		whole, parts := newTestMonitor(Policy{}), newTestMonitor(Policy{})
		for i := range n {
			k := rapid.IntRange(1, 5).Draw(t, "parts")
			var c, b int64
			for range k {
				pc, pb := rapid.Int64Range(0, 6).Draw(t, "c"), rapid.Int64Range(0, 6).Draw(t, "b")
				parts.Observe(Bucket{Start: at(i), Share: w, Candidate: pc, Baseline: pb})
				c, b = c+pc, b+pb
			}
			whole.Observe(Bucket{Start: at(i), Share: w, Candidate: c, Baseline: b})
		}
		pv, wv := parts.Verdict(at(n)), whole.Verdict(at(n))
		if !closeRel(pv.Evidence.EvidenceRatio, wv.Evidence.EvidenceRatio, 1e-9) || pv.Evidence.RateRatioHigh != wv.Evidence.RateRatioHigh {
			t.Fatalf("parts: %s %+v\nwhole: %s %+v", pv.Kind, pv.Evidence, wv.Kind, wv.Evidence)
		}
		// Parts give the test more moments to look, each one valid: a
		// spike seen mid-bucket stands even if the bucket's end would not
		// show it. Otherwise the verdicts agree.
		if pv.Kind != wv.Kind && pv.Kind != core.VerdictSpike {
			t.Fatalf("parts: %s, whole: %s", pv.Kind, wv.Kind)
		}
	})
}

func TestSpikeIsStickyAndStampedFromExposure(t *testing.T) {
	m := newTestMonitor(Policy{})
	// 20 candidate errors against 2 at 25% share, seen 3.5 s into the
	// second bucket.
	m.Observe(Bucket{Start: at(0), Share: 0.25, Candidate: 1, Baseline: 2})
	seen := at(1).Add(3500 * time.Millisecond)
	m.Observe(Bucket{Start: at(1), Share: 0.25, Candidate: 19, At: seen})
	v := m.Verdict(at(2))
	if v.Kind != core.VerdictSpike || v.Evidence.CalledAfter != seen.Sub(t0) {
		t.Fatalf("verdict %s called after %v, want SPIKE called %v after exposure", v.Kind, v.Evidence.CalledAfter, seen.Sub(t0))
	}
	if !strings.Contains(v.Evidence.Note, "spike called 14s after the candidate began taking traffic") {
		t.Fatalf("note = %q", v.Evidence.Note)
	}
	if v.Evidence.RateRatioLow <= 1 {
		t.Fatalf("lower bound %v: a spike rules out ratio 1", v.Evidence.RateRatioLow)
	}
	// Errors settling afterwards do not undo it.
	for i := 2; i < 200; i++ {
		m.Observe(Bucket{Start: at(i), Share: 0.25, Candidate: 1, Baseline: 3})
	}
	if v := m.Verdict(at(200)); v.Kind != core.VerdictSpike {
		t.Fatalf("after errors settled the verdict became %s", v.Kind)
	}
}

func TestHealthyNeedsABoundBelowTheTolerance(t *testing.T) {
	m := newTestMonitor(Policy{})
	// 9 candidate errors against 1 at 50% share: the case that used to
	// read HEALTHY although the ratio could be 394×.
	m.Observe(Bucket{Start: at(0), Share: 0.5, Candidate: 9, Baseline: 1})
	if v := m.Verdict(at(1)); v.Kind == core.VerdictHealthy {
		t.Fatalf("9 vs 1 errors is HEALTHY: %+v", v.Evidence)
	}
	m = newTestMonitor(Policy{})
	rng := rand.New(rand.NewPCG(1, 2))
	var v core.SpikeVerdict
	for i := range 60 {
		m.Observe(Bucket{Start: at(i), Share: 0.25, Candidate: poisson(rng, 25), Baseline: poisson(rng, 75)})
		if v = m.Verdict(at(i + 1)); v.Kind == core.VerdictHealthy {
			break
		}
	}
	ev := v.Evidence
	if v.Kind != core.VerdictHealthy || !(ev.RateRatioHigh <= 1.5) {
		t.Fatalf("10 minutes at 600 errors/min, equal rates: %s with upper bound %v", v.Kind, ev.RateRatioHigh)
	}
	if !strings.Contains(ev.Note, "no worse than 1.5× the baseline's error rate with 99% confidence") {
		t.Fatalf("note = %q", ev.Note)
	}
}

func TestInconclusiveSaysHowMuchLonger(t *testing.T) {
	m := newTestMonitor(Policy{})
	hist := make([]int64, 180)
	for i := range hist {
		hist[i] = 1 // 6 errors a minute
	}
	m.SetHistory(BucketWidth, hist)
	for i := range 12 {
		m.Observe(Bucket{Start: at(i), Share: 0.25, Candidate: int64(i % 4 / 3), Baseline: 1})
	}
	v := m.Verdict(at(12))
	if v.Kind != core.VerdictInconclusive || v.Evidence.NeedsMore <= 0 || !strings.Contains(v.Evidence.Note, "more at this error rate") {
		t.Fatalf("two minutes at 6 errors/min: %s, needs %v (%s)", v.Kind, v.Evidence.NeedsMore, v.Evidence.Note)
	}
	// Twice the rate needs about half as long.
	m2 := newTestMonitor(Policy{})
	for i := range hist {
		hist[i] = 2
	}
	m2.SetHistory(BucketWidth, hist)
	for i := range 12 {
		m2.Observe(Bucket{Start: at(i), Share: 0.25, Candidate: int64(i % 4 / 3), Baseline: 1})
	}
	if a, b := v.Evidence.NeedsMore, m2.Verdict(at(12)).Evidence.NeedsMore; !(b < a*3/4) {
		t.Fatalf("needs %v at 6/min and %v at 12/min: more errors must need less time", a, b)
	}
}

// When every error arrives five times, the history shows it, and a
// cluster counts as one error: a single cluster on the candidate's side
// is no spike.
func TestClusteredErrorsCountOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	hist := make([]int64, 180)
	for i := range hist {
		hist[i] = 5 * poisson(rng, 1)
	}
	m := newTestMonitor(Policy{})
	m.SetHistory(BucketWidth, hist)
	m.Observe(Bucket{Start: at(0), Share: 0.25, Candidate: 10})
	v := m.Verdict(at(1))
	if v.Kind == core.VerdictSpike || !(v.Evidence.Dispersion > 4) || !strings.Contains(v.Evidence.Note, "errors arrive in clusters") {
		t.Fatalf("two clusters of five: %s, dispersion %v (%s)", v.Kind, v.Evidence.Dispersion, v.Evidence.Note)
	}
	// The same ten errors from independent sources are a spike.
	m = newTestMonitor(Policy{})
	m.Observe(Bucket{Start: at(0), Share: 0.25, Candidate: 10})
	if v := m.Verdict(at(1)); v.Kind != core.VerdictSpike || v.Evidence.Dispersion != 1 {
		t.Fatalf("ten independent candidate errors: %s, dispersion %v", v.Kind, v.Evidence.Dispersion)
	}
}

// One incident of a hundred baseline errors in ten seconds counts as a
// bucket's usual load, not as a hundred independent errors.
func TestIncidentIsCapped(t *testing.T) {
	hist := make([]int64, 180)
	for i := range hist {
		hist[i] = int64(i % 2) // 3 errors a minute
	}
	m := newTestMonitor(Policy{})
	m.SetHistory(BucketWidth, hist)
	m.Observe(Bucket{Start: at(0), Share: 0.25, Candidate: 1, Baseline: 100})
	v := m.Verdict(at(1))
	if v.Kind == core.VerdictHealthy || !(v.Evidence.RateRatioHigh > 1.5) || !strings.Contains(v.Evidence.Note, "beyond a bucket's usual load") {
		t.Fatalf("one burst: %s, upper bound %v (%s)", v.Kind, v.Evidence.RateRatioHigh, v.Evidence.Note)
	}
}

// Baseline errors that arrive once a candidate burst has filled its
// bucket's cap weigh nothing in the test; the ratio shown beside "8 vs 2
// errors" is still the one those counts give, never ∞.
func TestRatioBesideTheCountsReadsClippedBaselineErrors(t *testing.T) {
	hist := make([]int64, 180)
	for i := range hist {
		hist[i] = int64(i % 2)
	}
	m := newTestMonitor(Policy{})
	m.SetHistory(BucketWidth, hist)
	m.Observe(Bucket{Start: at(0), Share: 0.25, Candidate: 8})
	m.Observe(Bucket{Start: at(0), Share: 0.25, Baseline: 2})
	ev := m.Verdict(at(1)).Evidence
	if ev.CandidateCount != 8 || ev.BaselineCount != 2 {
		t.Fatalf("counts %d vs %d; want 8 vs 2", ev.CandidateCount, ev.BaselineCount)
	}
	if want := 8.0 / 2 * 0.75 / 0.25; !closeRel(ev.RateRatio, want, 1e-9) {
		t.Fatalf("rate ratio beside 8 vs 2 errors at 25%% share = %v (%s); want %v", ev.RateRatio, ev.Ratio(), want)
	}
}

// At a low error rate the spike test does not spend its prior on
// regressions it could not see within an hour, and says so.
func TestFocusOnDetectableRegressions(t *testing.T) {
	hist := make([]int64, 360)
	for i := range hist {
		if i%12 == 0 {
			hist[i] = 1 // 0.5 errors a minute
		}
	}
	m := newTestMonitor(Policy{})
	m.SetHistory(BucketWidth, hist)
	m.Observe(Bucket{Start: at(0), Share: 0.1})
	v := m.Verdict(at(1))
	if !strings.Contains(v.Evidence.Note, "a regression of 1.5×, 2×, 3× could not be told apart within 1h") {
		t.Fatalf("note = %q", v.Evidence.Note)
	}
	if len(m.up) != 1 || m.up[0].factor != 5 || m.up[0].logWeight != 0 {
		t.Fatalf("spike test components %+v, want 5× alone", m.up)
	}
}

func TestPolicyDefaults(t *testing.T) {
	p := Policy{Alpha: 2, Tolerance: 0.9, MinEvents: -1, Alternatives: []Alternative{{0.5, 1}, {math.Inf(1), 1}}}.normalized()
	if p.Alpha != DefaultAlpha || p.Tolerance != DefaultTolerance || p.MinEvents != DefaultMinEvents || len(p.Alternatives) != len(DefaultAlternatives) {
		t.Fatalf("normalized = %+v", p)
	}
	p = Policy{Alternatives: []Alternative{{2, 3}, {4, 1}}}.normalized()
	if p.Alternatives[0].Weight != 0.75 || p.Alternatives[1].Weight != 0.25 {
		t.Fatalf("weights not normalised: %+v", p.Alternatives)
	}
}

func TestNewIssuesInEvidenceDoNotSpike(t *testing.T) {
	m := newTestMonitor(Policy{})
	m.SetNewIssues([]core.ErrorIssue{{Fingerprint: "x", Title: "TypeError: cart is undefined", Count: 3}})
	m.Observe(Bucket{Start: at(0), Share: 0.25, Candidate: 1, Baseline: 3})
	v := m.Verdict(at(1))
	if v.Kind == core.VerdictSpike || len(v.Evidence.NewIssues) != 1 || !strings.Contains(v.Evidence.Note, "first seen in v1.43.0") {
		t.Fatalf("verdict %s %+v", v.Kind, v.Evidence)
	}
}

// A quiet service (one error in half an hour) whose candidate suddenly
// throws a dozen errors in ten seconds: the cap learned from the quiet
// history must not hold the burst back.
func TestBurstOnAQuietServiceSpikesAtOnce(t *testing.T) {
	hist := make([]int64, 180)
	hist[90] = 1
	m := newTestMonitor(Policy{})
	m.SetHistory(BucketWidth, hist)
	m.Observe(Bucket{Start: at(0), Share: 0.25, Candidate: 12, Baseline: 1})
	if v := m.Verdict(at(1)); v.Kind != core.VerdictSpike {
		t.Fatalf("12 vs 1 errors in one bucket at 25%%: %s (evidence ratio %v)", v.Kind, v.Evidence.EvidenceRatio)
	}
}
