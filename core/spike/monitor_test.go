package spike

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"pgregory.net/rapid"
)

var (
	prod = core.Ref{Service: "shop/api", Env: "production"}
	t0   = time.Date(2026, 3, 1, 21, 0, 0, 0, time.UTC)
)

func at(i int) time.Time { return t0.Add(time.Duration(i) * BucketWidth) }

func newTestMonitor(p Policy) *Monitor {
	return NewMonitor(prod, "v1.43.0", "v1.42.0", p, t0)
}

// drawBuckets draws informative buckets with the given share (or, with
// share 0, a share per bucket from the rollout steps).
func drawBuckets(t *rapid.T, share float64, maxCount int64) []Bucket {
	n := rapid.IntRange(0, 40).Draw(t, "buckets")
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

func TestEvidenceRatioIsOneWithoutData(t *testing.T) {
	m := newTestMonitor(Policy{})
	if got := m.EvidenceRatio(); got != 1 {
		t.Fatalf("evidence ratio with no data = %v, want exactly 1", got)
	}
	// Buckets at share 0 or 1, empty buckets and negative counts carry no
	// information and leave it at exactly 1.
	m.Observe(Bucket{Start: at(0), Share: 0, Candidate: 0, Baseline: 50})
	m.Observe(Bucket{Start: at(1), Share: 1, Candidate: 50, Baseline: 0})
	m.Observe(Bucket{Start: at(2), Share: 0.25})
	m.Observe(Bucket{Start: at(3), Share: 0.25, Candidate: -3, Baseline: 5})
	v := m.Verdict(at(4))
	if v.Evidence.EvidenceRatio != 1 || v.Evidence.CandidateCount != 0 || v.Evidence.BaselineCount != 0 {
		t.Fatalf("uninformative buckets changed the evidence: %+v", v.Evidence)
	}
	if v.Kind != core.VerdictInconclusive {
		t.Fatalf("verdict with no errors = %s, want inconclusive", v.Kind)
	}
}

func TestMonitorProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := drawBuckets(t, 0, 20)
		m := newTestMonitor(Policy{})
		var c, b int64
		for _, x := range bs {
			m.Observe(x)
			c += x.Candidate
			b += x.Baseline
			if r := m.EvidenceRatio(); !(r >= 0) || math.IsInf(r, 0) {
				t.Fatalf("evidence ratio %v is not a finite number ≥ 0", r)
			}
		}
		v := m.Verdict(at(len(bs)))
		ev := v.Evidence
		if ev.CandidateCount != c || ev.BaselineCount != b {
			t.Fatalf("evidence counts %d/%d, observed %d/%d", ev.CandidateCount, ev.BaselineCount, c, b)
		}
		if !(ev.PValue >= 0 && ev.PValue <= 1) {
			t.Fatalf("p-value %v outside [0,1]", ev.PValue)
		}
		if ev.Threshold != 100 {
			t.Fatalf("threshold %v, want 1/alpha = 100", ev.Threshold)
		}
		if ev.Elapsed != time.Duration(len(bs))*BucketWidth {
			t.Fatalf("elapsed %v, want %v", ev.Elapsed, time.Duration(len(bs))*BucketWidth)
		}
		if c+b > 0 && !(ev.RateRatioLow <= ev.RateRatioHigh) {
			t.Fatalf("interval [%v, %v] is inverted", ev.RateRatioLow, ev.RateRatioHigh)
		}
		// The evidence must survive the trip to the screen and the store.
		if _, err := json.Marshal(v); err != nil {
			t.Fatalf("verdict does not encode: %v", err)
		}
		// The evidence ratio is the independent product of per-bucket
		// likelihood ratios, mixed with equal weights.
		var mix float64
		for _, r := range DefaultGrid {
			lr := 1.0
			for _, x := range bs {
				p := x.Share * r / (x.Share*r + 1 - x.Share)
				lr *= math.Pow(p/x.Share, float64(x.Candidate)) * math.Pow((1-p)/(1-x.Share), float64(x.Baseline))
			}
			mix += lr / float64(len(DefaultGrid))
		}
		if !closeRel(ev.EvidenceRatio, mix, 1e-9) {
			t.Fatalf("evidence ratio %v, direct product %v", ev.EvidenceRatio, mix)
		}
		// SPIKE exactly when the ratio reached 1/alpha at some bucket with
		// enough events (checked by replaying).
		replay := newTestMonitor(Policy{})
		want := false
		var n int64
		for _, x := range bs {
			replay.Observe(x)
			n += x.Candidate + x.Baseline
			if n >= DefaultMinEvents && replay.EvidenceRatio() >= 100 {
				want = true
			}
		}
		if got := v.Kind == core.VerdictSpike; got != want {
			t.Fatalf("spike = %v, but the ratio crossing says %v", got, want)
		}
	})
}

func TestOrderWithinEqualShareDoesNotMatter(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := rapid.SampledFrom([]float64{0.05, 0.1, 0.25, 0.5, 0.9}).Draw(t, "share")
		bs := drawBuckets(t, w, 30)
		perm := rapid.Permutation(bs).Draw(t, "perm")
		a, b := newTestMonitor(Policy{}), newTestMonitor(Policy{})
		for i := range bs {
			a.Observe(bs[i])
			b.Observe(perm[i])
		}
		va, vb := a.Verdict(at(len(bs))), b.Verdict(at(len(bs)))
		ea, eb := va.Evidence, vb.Evidence
		if !closeRel(ea.EvidenceRatio, eb.EvidenceRatio, 1e-12) {
			t.Fatalf("evidence ratio %v vs %v after reordering", ea.EvidenceRatio, eb.EvidenceRatio)
		}
		if ea.CandidateCount != eb.CandidateCount || ea.BaselineCount != eb.BaselineCount ||
			ea.PValue != eb.PValue || ea.RateRatio != eb.RateRatio || ea.Share != eb.Share {
			t.Fatalf("evidence differs after reordering:\n%+v\n%+v", ea, eb)
		}
		if ea.CandidateCount+ea.BaselineCount > 0 && ea.CandidateCount > 0 && ea.BaselineCount > 0 {
			want := float64(ea.CandidateCount) / float64(ea.BaselineCount) * (1 - w) / w
			if !closeRel(ea.RateRatio, want, 1e-12) {
				t.Fatalf("rate ratio %v, want (c/b)(1-w)/w = %v", ea.RateRatio, want)
			}
		}
	})
}

func TestInconclusiveBelowMinEvents(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		minEvents := rapid.Int64Range(1, 200).Draw(t, "minEvents")
		m := newTestMonitor(Policy{MinEvents: minEvents})
		left := minEvents - 1
		for i := 0; left > 0 && i < 50; i++ {
			// Lopsided on purpose: every error from a 5% canary.
			c := rapid.Int64Range(0, left).Draw(t, "c")
			b := rapid.Int64Range(0, left-c).Draw(t, "b")
			left -= c + b
			m.Observe(Bucket{Start: at(i), Share: 0.05, Candidate: c, Baseline: b})
		}
		if v := m.Verdict(at(50)); v.Kind != core.VerdictInconclusive {
			t.Fatalf("verdict %s with %d errors below min %d: %+v", v.Kind,
				v.Evidence.CandidateCount+v.Evidence.BaselineCount, minEvents, v.Evidence)
		}
	})
}

func TestSpikeIsCalledAndSticky(t *testing.T) {
	m := newTestMonitor(Policy{})
	// 25% canary, candidate 5× worse: 5 candidate vs 3 baseline errors per
	// bucket where 1 vs 3 is healthy.
	i := 0
	for ; i < 60; i++ {
		m.Observe(Bucket{Start: at(i), Share: 0.25, Candidate: 5, Baseline: 3})
		if _, ok := m.SpikeAt(); ok {
			break
		}
	}
	spikeAt, ok := m.SpikeAt()
	if !ok {
		t.Fatalf("no spike after 60 buckets of a 5× regression; ratio %v", m.EvidenceRatio())
	}
	if spikeAt != at(i) {
		t.Fatalf("spike at %v, want the start of bucket %d (%v)", spikeAt, i, at(i))
	}
	v := m.Verdict(at(i + 1))
	if v.Kind != core.VerdictSpike || v.Evidence.EvidenceRatio < v.Evidence.Threshold {
		t.Fatalf("verdict %s with ratio %v", v.Kind, v.Evidence.EvidenceRatio)
	}
	if v.Evidence.RateRatio < 3 || v.Evidence.PValue > 1e-3 {
		t.Fatalf("evidence does not show the regression: %+v", v.Evidence)
	}
	// Errors then settle far below the baseline: the ratio falls under
	// the threshold, the verdict stays spike and says so.
	for j := i + 1; j < i+200; j++ {
		m.Observe(Bucket{Start: at(j), Share: 0.25, Candidate: 0, Baseline: 6})
	}
	v = m.Verdict(at(i + 200))
	if v.Evidence.EvidenceRatio >= v.Evidence.Threshold {
		t.Fatalf("test setup: ratio %v did not fall below the threshold", v.Evidence.EvidenceRatio)
	}
	if v.Kind != core.VerdictSpike || !strings.Contains(v.Evidence.Note, "stays spike") {
		t.Fatalf("spike not sticky: %s, note %q", v.Kind, v.Evidence.Note)
	}
}

func TestHealthyGivesUpperBound(t *testing.T) {
	m := newTestMonitor(Policy{})
	// 10% canary, exactly proportional errors: 1 vs 9 per bucket.
	for i := range 30 {
		m.Observe(Bucket{Start: at(i), Share: 0.1, Candidate: 1, Baseline: 9})
	}
	v := m.Verdict(at(30))
	ev := v.Evidence
	if v.Kind != core.VerdictHealthy {
		t.Fatalf("verdict %s for proportional errors: %+v", v.Kind, ev)
	}
	if !closeRel(ev.RateRatio, 1, 1e-12) || !(ev.RateRatioLow < 1 && 1 < ev.RateRatioHigh && ev.RateRatioHigh < 2) {
		t.Fatalf("rate ratio %v [%v, %v], want 1 inside a bound below 2", ev.RateRatio, ev.RateRatioLow, ev.RateRatioHigh)
	}
	if ev.Share != 0.1 || ev.CandidateCount != 30 || ev.BaselineCount != 270 {
		t.Fatalf("evidence %+v", ev)
	}
	if !strings.Contains(ev.Note, "no evidence of regression so far") || !strings.Contains(ev.Note, "upper bound") {
		t.Fatalf("healthy note %q does not say what healthy means", ev.Note)
	}
}

func TestVaryingShareUsesWeightedShareAndJointMLE(t *testing.T) {
	m := newTestMonitor(Policy{})
	// Candidate exactly 2× worse at each step: at share w the candidate's
	// share of errors is 2w/(2w+1-w).
	steps := []struct {
		w    float64
		c, b int64
	}{{0.1, 2, 9}, {0.25, 2, 3}, {0.5, 6, 3}}
	var c, n int64
	var wn float64
	for i, s := range steps {
		for j := range 20 {
			m.Observe(Bucket{Start: at(20*i + j), Share: s.w, Candidate: s.c, Baseline: s.b})
			c += s.c
			n += s.c + s.b
			wn += s.w * float64(s.c+s.b)
		}
	}
	ev := m.Verdict(at(60)).Evidence
	if !closeRel(ev.RateRatio, 2, 1e-9) {
		t.Fatalf("MLE %v, want 2 (every step is exactly 2× worse)", ev.RateRatio)
	}
	if !closeRel(ev.Share, wn/float64(n), 1e-12) {
		t.Fatalf("share %v, want error-weighted %v", ev.Share, wn/float64(n))
	}
	if !closeRel(ev.PValue, BinomialUpperTail(c, n, wn/float64(n)), 1e-12) {
		t.Fatalf("p-value %v", ev.PValue)
	}
	if !strings.Contains(ev.Note, "share varied 10%–50%") {
		t.Fatalf("note %q does not say the share varied", ev.Note)
	}
}

func TestPolicyDefaults(t *testing.T) {
	for _, p := range []Policy{{}, {Alpha: -1, MinEvents: -5, Grid: []float64{0.5, 1, math.Inf(1)}}, {Alpha: 1}} {
		m := NewMonitor(prod, "a", "b", p, t0)
		if m.alpha != DefaultAlpha || m.minEvents != DefaultMinEvents || len(m.logR) != len(DefaultGrid) {
			t.Errorf("policy %+v: alpha %v, min %d, grid %d", p, m.alpha, m.minEvents, len(m.logR))
		}
	}
	m := NewMonitor(prod, "a", "b", Policy{Alpha: 0.05, MinEvents: 3, Grid: []float64{2}}, t0)
	if v := m.Verdict(t0); v.Evidence.Threshold != 20 {
		t.Errorf("threshold %v, want 20", v.Evidence.Threshold)
	}
}

func TestNewIssuesInEvidenceDoNotSpike(t *testing.T) {
	m := newTestMonitor(Policy{})
	for i := range 30 {
		m.Observe(Bucket{Start: at(i), Share: 0.25, Candidate: 1, Baseline: 3})
	}
	fresh := NewIssues([]core.ErrorIssue{
		{Fingerprint: "f-old", Title: "timeout", Count: 20},
		{Fingerprint: "f-new", Title: "TypeError: cart is undefined", Count: 9},
	}, map[string]bool{"f-old": true}, 5)
	m.SetNewIssues(fresh)
	fresh[0].Title = "mutated by the caller"
	v := m.Verdict(at(30))
	if v.Kind != core.VerdictHealthy {
		t.Fatalf("verdict %s: a new fingerprint alone must not call spike", v.Kind)
	}
	if len(v.Evidence.NewIssues) != 1 || v.Evidence.NewIssues[0].Title != "TypeError: cart is undefined" {
		t.Fatalf("new issues in evidence: %+v", v.Evidence.NewIssues)
	}
	if !strings.Contains(v.Evidence.Note, "first seen in v1.43.0") {
		t.Fatalf("note %q does not mention the new fingerprint", v.Evidence.Note)
	}
}

func BenchmarkMonitorObserve(b *testing.B) {
	for _, bc := range []struct {
		name   string
		shares []float64
	}{{"constant-share", []float64{0.25}}, {"share-changes-every-bucket", []float64{0.1, 0.25, 0.5}}} {
		b.Run(bc.name, func(b *testing.B) {
			m := newTestMonitor(Policy{})
			i := 0
			for b.Loop() {
				m.Observe(Bucket{Start: at(i), Share: bc.shares[i%len(bc.shares)], Candidate: int64(i % 3), Baseline: 4})
				i++
			}
		})
	}
}

func BenchmarkMonitorVerdict(b *testing.B) {
	m := newTestMonitor(Policy{})
	for i := range 180 {
		m.Observe(Bucket{Start: at(i), Share: []float64{0.1, 0.25, 0.5}[i/60], Candidate: 1, Baseline: 5})
	}
	for b.Loop() {
		m.Verdict(at(180))
	}
}
