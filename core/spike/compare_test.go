package spike

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ripcordhq/ripcord/core"
)

func constCounts(n int, v int64) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestCompareWindowsSteadyIsHealthy(t *testing.T) {
	v := CompareWindows(prod, "v1.43.0", "v1.42.0", constCounts(180, 4), constCounts(90, 4), Policy{})
	ev := v.Evidence
	if v.Kind != core.VerdictHealthy || !(ev.RateRatioHigh <= 1.5) {
		t.Fatalf("equal rates: verdict %s (%+v)", v.Kind, ev)
	}
	// Only the 90 buckets nearest the switch are paired.
	if ev.CandidateCount != 360 || ev.BaselineCount != 360 || ev.Share != 0.5 || ev.RateRatio != 1 {
		t.Fatalf("evidence %+v, want 360 vs 360 at share 0.5, ratio 1", ev)
	}
	if ev.Elapsed != 90*BucketWidth || !v.At.IsZero() {
		t.Fatalf("elapsed %v, at %v", ev.Elapsed, v.At)
	}
}

// 90 errors on each side cannot rule out 1.5×: no HEALTHY on thin
// evidence, and the verdict says how much longer it needs.
func TestCompareWindowsFewErrorsIsInconclusive(t *testing.T) {
	v := CompareWindows(prod, "v1.43.0", "v1.42.0", constCounts(180, 1), constCounts(90, 1), Policy{})
	if v.Kind != core.VerdictInconclusive || v.Evidence.NeedsMore <= 0 || v.Evidence.RateRatioHigh < 1.5 {
		t.Fatalf("90 vs 90 errors: %s %+v", v.Kind, v.Evidence)
	}
}

func TestCompareWindowsRegressionSpikes(t *testing.T) {
	before := constCounts(180, 1)
	// 4× the errors after the switch: caught within the first minutes.
	for n := 1; n <= 180; n++ {
		v := CompareWindows(prod, "v1.43.0", "v1.42.0", before, constCounts(n, 4), Policy{})
		if v.Kind == core.VerdictSpike {
			if n > 12 {
				t.Fatalf("4× regression needed %d buckets", n)
			}
			if v.Evidence.RateRatio != 4 {
				t.Fatalf("rate ratio %v, want 4", v.Evidence.RateRatio)
			}
			return
		}
	}
	t.Fatal("4× regression after the switch never spiked")
}

func TestCompareWindowsPairsMirrorTheSwitch(t *testing.T) {
	// Errors piled up long before the switch must not be paired with the
	// first buckets after it; the bucket just before is.
	before := append(constCounts(50, 20), constCounts(10, 0)...)
	after := constCounts(10, 2)
	v := CompareWindows(prod, "v1.43.0", "v1.42.0", before, after, Policy{})
	if v.Evidence.BaselineCount != 0 || v.Evidence.CandidateCount != 20 {
		t.Fatalf("paired the wrong buckets: %+v", v.Evidence)
	}
	if v.Kind != core.VerdictSpike {
		t.Fatalf("20 errors after vs 0 before: verdict %s, ratio %v", v.Kind, v.Evidence.EvidenceRatio)
	}
}

func TestCompareWindowsNullFalseAlarms(t *testing.T) {
	// Stationary traffic across the switch: 6 errors/min on both sides,
	// 30-minute windows, judged after every bucket (sticky, so the final
	// verdict says whether any look spiked).
	const runs = 1000
	rng := rand.New(rand.NewPCG(20260301, 4))
	spikes := 0
	for range runs {
		before, after := make([]int64, 180), make([]int64, 180)
		for i := range before {
			before[i], after[i] = poisson(rng, 1), poisson(rng, 1)
		}
		if CompareWindows(prod, "b", "a", before, after, Policy{}).Kind == core.VerdictSpike {
			spikes++
		}
	}
	bound := DefaultAlpha + 3*math.Sqrt(DefaultAlpha*(1-DefaultAlpha)/runs)
	t.Logf("full rollout, no regression: SPIKE in %d/%d windows", spikes, runs)
	if float64(spikes)/runs > bound {
		t.Fatalf("false alarms %d/%d exceed alpha + 3 s.e.", spikes, runs)
	}
}
