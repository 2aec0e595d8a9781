package spike

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// These simulations run whole canaries with Poisson error arrivals from
// seeded PCGs, so every run sees the same numbers. Each canary has half an
// hour of the baseline's history at full traffic, an optional deploy
// delay (still the baseline's alone, so it is history too: deploy time is
// never evidence), then 30 minutes of exposure in 10 s buckets with the
// verdict asked after every bucket.
//
// The oracle is the sequential probability ratio test that knows the true
// ratio k: the same conditional likelihood, one component, threshold
// 1/alpha. No test that must also work when the ratio is unknown can beat
// it on average; the mixture pays for not knowing k in time.
//
// RIPCORD_SPIKE_SIM=full go test ./core/spike -run TestSimulationTable -v
// prints the table with 1,000 canaries per healthy scenario and 500 per
// regression (about five minutes on two cores); =quick runs a few per row.
// The tests after it run in every `go test` and check the claims that
// matter most on fewer canaries.

const (
	bucketsPerMinute = 6 // 10 s buckets
	canaryBuckets    = 30 * bucketsPerMinute
	historyLen       = 30 * bucketsPerMinute
)

// poisson draws a Poisson variate: Knuth's product method for small means,
// Hörmann's PTRS transformed rejection (as numpy has it) for large ones.
func poisson(rng *rand.Rand, lambda float64) int64 {
	if lambda <= 0 {
		return 0
	}
	if lambda < 10 {
		limit, prod := math.Exp(-lambda), rng.Float64()
		var k int64
		for prod > limit {
			k++
			prod *= rng.Float64()
		}
		return k
	}
	slam, loglam := math.Sqrt(lambda), math.Log(lambda)
	b := 0.931 + 2.53*slam
	a := -0.059 + 0.02483*b
	invalpha := 1.1239 + 1.1328/(b-3.4)
	vr := 0.9277 - 3.6224/(b-2)
	for {
		u := rng.Float64() - 0.5
		v := rng.Float64()
		us := 0.5 - math.Abs(u)
		k := math.Floor((2*a/us+b)*u + lambda + 0.43)
		if us >= 0.07 && v <= vr {
			return int64(k)
		}
		if k < 0 || (us < 0.013 && v > us) {
			continue
		}
		lg, _ := math.Lgamma(k + 1)
		if math.Log(v)+math.Log(invalpha)-math.Log(a/(us*us)+b) <= -lambda+k*loglam-lg {
			return int64(k)
		}
	}
}

// scenario is one row of the table.
type scenario struct {
	name       string
	ratePerMin float64             // baseline errors/min at 100% traffic
	share      func(i int) float64 // candidate share in exposure bucket i
	k          float64             // candidate's per-request error rate ÷ baseline's
	runs       int
	delay      time.Duration // deploy and health check: the baseline's alone
	cluster    int64         // every error arrives this many times in its bucket (0, 1: once)
	burstAt    int           // exposure bucket of a baseline incident (-1: none)
	burst      int64         // errors in it
	newPerMin  float64       // candidate-only errors/min from a new failure (on top of k)
}

func constShare(w float64) func(int) float64 { return func(int) float64 { return w } }

// result summarises a scenario's canaries.
type result struct {
	runs          int
	spikeAt       []int // first SPIKE bucket per canary, -1 never
	healthyAt     []int
	oracleAt      []int
	endSpike      int
	endHealthy    int
	healthyBefore int // canaries that showed HEALTHY before (or without) SPIKE
}

func simulate(sc scenario, seed uint64) result {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	res := result{runs: sc.runs}
	alpha := DefaultAlpha
	m := max(sc.cluster, 1)
	lambda := sc.ratePerMin / bucketsPerMinute
	pre := historyLen + int(sc.delay/BucketWidth)
	hist := make([]int64, pre)
	for range sc.runs {
		for i := range hist {
			hist[i] = m * poisson(rng, lambda)
		}
		mon := NewMonitor(prod, "v2", "v1", Policy{}, t0)
		mon.SetHistory(BucketWidth, hist)
		spikeAt, healthyAt, oracleAt := -1, -1, -1
		var oracle float64
		for i := range canaryBuckets {
			w := sc.share(i)
			c := m*poisson(rng, lambda*w*sc.k) + poisson(rng, sc.newPerMin/bucketsPerMinute)
			b := m * poisson(rng, lambda*(1-w))
			if i == sc.burstAt {
				b += sc.burst
			}
			mon.Observe(Bucket{Start: at(i), Share: w, Candidate: c, Baseline: b})
			switch mon.Kind() {
			case core.VerdictSpike:
				if spikeAt < 0 {
					spikeAt = i
				}
			case core.VerdictHealthy:
				if healthyAt < 0 {
					healthyAt = i
				}
			}
			if sc.k > 1 && oracleAt < 0 {
				// The oracle knows the clustering too: one independent
				// event per cluster.
				oracle += (float64(c)*math.Log(sc.k) - float64(c+b)*math.Log1p(w*(sc.k-1))) / float64(m)
				if oracle >= -math.Log(alpha) {
					oracleAt = i
				}
			}
		}
		res.spikeAt = append(res.spikeAt, spikeAt)
		res.healthyAt = append(res.healthyAt, healthyAt)
		res.oracleAt = append(res.oracleAt, oracleAt)
		switch mon.Kind() {
		case core.VerdictSpike:
			res.endSpike++
		case core.VerdictHealthy:
			res.endHealthy++
		}
		if healthyAt >= 0 && (spikeAt < 0 || healthyAt < spikeAt) {
			res.healthyBefore++
		}
	}
	return res
}

// ever counts canaries where the event happened.
func ever(at []int) int {
	n := 0
	for _, a := range at {
		if a >= 0 {
			n++
		}
	}
	return n
}

// quantileTime is the q-quantile of the time to an event over all
// canaries, counting those without it as never (-1 when the quantile is
// among them). Times are from exposure start to the end of the bucket.
func quantileTime(at []int, q float64) time.Duration {
	ts := make([]int, 0, len(at))
	for _, a := range at {
		if a >= 0 {
			ts = append(ts, a)
		}
	}
	slices.Sort(ts)
	i := int(math.Ceil(q*float64(len(at)))) - 1
	if i >= len(ts) {
		return -1
	}
	return time.Duration(ts[max(i, 0)]+1) * BucketWidth
}

func fmtTime(d time.Duration) string {
	if d < 0 {
		return ">30m"
	}
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

func pct(n, of int) string { return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of)) }

// grid is the scenario table: the base grid and the robustness rows.
func grid(runsHealthy, runsRegression int) []scenario {
	var out []scenario
	runs := func(k float64) int {
		if k == 1 {
			return runsHealthy
		}
		return runsRegression
	}
	for _, rate := range []float64{0.5, 6, 60, 600} {
		for _, w := range []float64{0.1, 0.25} {
			for _, k := range []float64{1, 1.5, 2, 5} {
				out = append(out, scenario{name: "base", ratePerMin: rate, share: constShare(w), k: k, runs: runs(k), burstAt: -1})
			}
		}
	}
	// Between the mixture's grid points: not in the brief's grid, shown
	// so the table does not only show where the prior has its mass.
	for _, rate := range []float64{6, 60} {
		for _, w := range []float64{0.1, 0.25} {
			out = append(out, scenario{name: "k between grid points", ratePerMin: rate, share: constShare(w), k: 3, runs: runsRegression, burstAt: -1})
		}
	}
	for _, d := range []time.Duration{0, 30 * time.Second, 120 * time.Second} {
		for _, k := range []float64{1, 2} {
			out = append(out, scenario{name: "deploy " + fmtTime(d), ratePerMin: 6, share: constShare(0.25), k: k, runs: runs(k), delay: d, burstAt: -1})
		}
	}
	for _, rate := range []float64{6, 60} {
		for _, k := range []float64{1, 2} {
			out = append(out, scenario{name: "burst 100 @1m", ratePerMin: rate, share: constShare(0.25), k: k, runs: runs(k), burstAt: 6, burst: 100})
		}
	}
	for _, rate := range []float64{0.5, 6, 60} {
		for _, k := range []float64{1, 2, 5} {
			out = append(out, scenario{name: "errors ×5", ratePerMin: rate, share: constShare(0.25), k: k, runs: runs(k), cluster: 5, burstAt: -1})
		}
	}
	step := func(i int) float64 {
		if i < canaryBuckets/2 {
			return 0.25
		}
		return 0.5
	}
	for _, rate := range []float64{6, 60} {
		for _, k := range []float64{1, 2} {
			out = append(out, scenario{name: "25%→50% @15m", ratePerMin: rate, share: step, k: k, runs: runs(k), burstAt: -1})
		}
	}
	out = append(out,
		scenario{name: "zero errors", ratePerMin: 0, share: constShare(0.25), k: 1, runs: runsHealthy, burstAt: -1},
		scenario{name: "zero baseline, new 1/min", ratePerMin: 0, share: constShare(0.25), k: 1, runs: runsRegression, burstAt: -1, newPerMin: 1},
	)
	return out
}

// table runs the grid and renders it as markdown.
func table(t *testing.T, rows []scenario) (string, []result) {
	var sb strings.Builder
	sb.WriteString("| scenario | errors/min | share | k | canaries | SPIKE ever | median SPIKE | p90 SPIKE | oracle median | ÷ oracle | HEALTHY ever | HEALTHY before SPIKE | median HEALTHY | ends S/H/I |\n")
	sb.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	results := make([]result, len(rows))
	for i, sc := range rows {
		r := simulate(sc, uint64(1000+i))
		results[i] = r
		med, p90, om := quantileTime(r.spikeAt, 0.5), quantileTime(r.spikeAt, 0.9), quantileTime(r.oracleAt, 0.5)
		ratio := "—"
		if med > 0 && om > 0 {
			ratio = fmt.Sprintf("%.2f", med.Seconds()/om.Seconds())
		}
		oracle := "—"
		if sc.k > 1 {
			oracle = fmtTime(om)
		}
		share := fmt.Sprintf("%.0f%%", 100*sc.share(0))
		if sc.share(0) != sc.share(canaryBuckets-1) {
			share = fmt.Sprintf("%.0f→%.0f%%", 100*sc.share(0), 100*sc.share(canaryBuckets-1))
		}
		inc := r.runs - r.endSpike - r.endHealthy
		fmt.Fprintf(&sb, "| %s | %g | %s | %g | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s/%s/%s |\n",
			sc.name, sc.ratePerMin, share, sc.k, r.runs, pct(ever(r.spikeAt), r.runs), fmtTime(med), fmtTime(p90), oracle, ratio,
			pct(ever(r.healthyAt), r.runs), pct(r.healthyBefore, r.runs), fmtTime(quantileTime(r.healthyAt, 0.5)),
			pct(r.endSpike, r.runs), pct(r.endHealthy, r.runs), pct(inc, r.runs))
	}
	return sb.String(), results
}

// TestSimulationTable prints the scenario table and checks the claims on
// it: false alarms within alpha (plus three binomial standard errors of
// simulation noise) wherever the candidate is no worse, HEALTHY within
// alpha wherever it is 1.5× or worse, and the median time to SPIKE within
// 1.25× of the oracle's wherever the oracle's median is inside the canary.
func TestSimulationTable(t *testing.T) {
	healthyRuns, regressionRuns := 120, 60
	full := false
	switch os.Getenv("RIPCORD_SPIKE_SIM") {
	case "full":
		healthyRuns, regressionRuns, full = 1000, 500, true
	case "":
		t.Skip("set RIPCORD_SPIKE_SIM=quick for the table with a few canaries per row (~40 s), =full for 1,000/500 (~5 min)")
	}
	rows := grid(healthyRuns, regressionRuns)
	tab, results := table(t, rows)
	t.Log("\n" + tab)
	for i, sc := range rows {
		r := results[i]
		bound := func(a float64) int {
			return int(math.Floor(float64(r.runs) * (a + 3*math.Sqrt(a*(1-a)/float64(r.runs)))))
		}
		desc := fmt.Sprintf("%s %g/min k=%g", sc.name, sc.ratePerMin, sc.k)
		if sc.k <= 1 && sc.newPerMin == 0 {
			if n := ever(r.spikeAt); n > bound(DefaultAlpha) {
				t.Errorf("%s: SPIKE in %d of %d healthy canaries, above alpha's bound %d", desc, n, r.runs, bound(DefaultAlpha))
			}
		}
		if sc.k >= DefaultTolerance {
			if n := ever(r.healthyAt); n > bound(DefaultAlpha) {
				t.Errorf("%s: HEALTHY in %d of %d canaries with a %g× regression", desc, n, r.runs, sc.k)
			}
		}
		if !full || sc.name != "base" || sc.k < 1.5 {
			continue // speed is judged on the full grid's base rows
		}
		// Times are whole buckets, so the bound is 1.25× the oracle's
		// median rounded up to the bucket the verdict is asked at.
		med, om := quantileTime(r.spikeAt, 0.5), quantileTime(r.oracleAt, 0.5)
		limit := time.Duration(math.Ceil(1.25*om.Seconds()/BucketWidth.Seconds())) * BucketWidth
		if om > 0 && (med < 0 || med > limit) {
			t.Errorf("%s share %g: median time to SPIKE %s, oracle %s: later than 1.25× (%s)", desc, sc.share(0), fmtTime(med), fmtTime(om), fmtTime(limit))
		}
	}
}

// claimBound is alpha plus three binomial standard errors over runs: the
// most canaries out of runs a test with error bound alpha may show.
func claimBound(alpha float64, runs int) int {
	return int(math.Floor(float64(runs) * (alpha + 3*math.Sqrt(alpha*(1-alpha)/float64(runs)))))
}

// Healthy canaries whose every error arrives five times in its bucket
// false-alarm within alpha: the clustering is learned from the history.
func TestClusteredErrorsKeepFalseAlarmsWithinAlpha(t *testing.T) {
	for _, rate := range []float64{0.5, 6} {
		r := simulate(scenario{ratePerMin: rate, share: constShare(0.25), k: 1, runs: 300, cluster: 5, burstAt: -1}, 11)
		if n := ever(r.spikeAt); n > claimBound(DefaultAlpha, r.runs) {
			t.Errorf("%g errors/min ×5: SPIKE in %d of %d healthy canaries", rate, n, r.runs)
		}
	}
}

// A 100-error baseline incident in minute 1 neither makes a 2× regression
// look HEALTHY nor hides it.
func TestIncidentNeitherClearsNorHidesARegression(t *testing.T) {
	r := simulate(scenario{ratePerMin: 60, share: constShare(0.25), k: 2, runs: 200, burstAt: 6, burst: 100}, 12)
	if n := ever(r.healthyAt); n > claimBound(DefaultAlpha, r.runs) {
		t.Errorf("HEALTHY in %d of %d canaries with a 2× regression after an incident", n, r.runs)
	}
	if n := ever(r.spikeAt); n < r.runs*95/100 {
		t.Errorf("2× regression caught in only %d of %d canaries after an incident", n, r.runs)
	}
}

// A 5× regression is never HEALTHY, and is caught about as fast as the
// oracle that knows it is 5×.
func TestRegressionIsNotHealthyAndIsCaughtNearTheOracle(t *testing.T) {
	r := simulate(scenario{ratePerMin: 6, share: constShare(0.1), k: 5, runs: 300, burstAt: -1}, 13)
	if n := ever(r.healthyAt); n > claimBound(DefaultAlpha, r.runs) {
		t.Errorf("HEALTHY in %d of %d canaries with a 5× regression", n, r.runs)
	}
	med, om := quantileTime(r.spikeAt, 0.5), quantileTime(r.oracleAt, 0.5)
	limit := time.Duration(math.Ceil(1.25*om.Seconds()/BucketWidth.Seconds())) * BucketWidth
	if med < 0 || om < 0 || med > limit {
		t.Errorf("median time to SPIKE %s, oracle %s: later than %s", fmtTime(med), fmtTime(om), fmtTime(limit))
	}
}

// Healthy canaries at a steady 60 errors/min false-alarm within alpha and
// are mostly HEALTHY within the half hour.
func TestHealthyCanariesRarelyFalseAlarm(t *testing.T) {
	r := simulate(scenario{ratePerMin: 60, share: constShare(0.25), k: 1, runs: 300, burstAt: -1}, 14)
	if n := ever(r.spikeAt); n > claimBound(DefaultAlpha, r.runs) {
		t.Errorf("SPIKE in %d of %d healthy canaries", n, r.runs)
	}
	if r.endHealthy < r.runs*9/10 {
		t.Errorf("only %d of %d healthy canaries at 60 errors/min end HEALTHY", r.endHealthy, r.runs)
	}
}
