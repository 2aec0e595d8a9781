package spike

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// These simulations run whole canaries with Poisson error arrivals from a
// seeded PCG, so every run sees the same numbers.

const bucketsPerMinute = 6 // 10 s buckets

// poisson draws a Poisson variate by Knuth's product method; the rates
// here are at most a few tens per bucket.
func poisson(rng *rand.Rand, lambda float64) int64 {
	limit, prod := math.Exp(-lambda), rng.Float64()
	var k int64
	for prod > limit {
		k++
		prod *= rng.Float64()
	}
	return k
}

// canary describes a simulated canary.
type canary struct {
	ratePerMin float64             // total errors/min if the candidate were no worse
	share      func(i int) float64 // candidate traffic share in bucket i
	factor     float64             // candidate's per-request error rate ÷ baseline's
	buckets    int
}

// steps is a 30-minute canary at 10%, 25% then 50%, ten minutes each.
func steps(i int) float64 { return []float64{0.1, 0.25, 0.5}[min(i/60, 2)] }

// run simulates one canary, observing every bucket, and returns the index
// of the bucket at which the monitor called SPIKE and at which a naive
// fixed-alpha binomial test on the running totals would first have fired
// (-1 for never).
func (c canary) run(rng *rand.Rand, withNaive bool) (spikeAt, naiveAt int, v core.SpikeVerdict) {
	m := newTestMonitor(Policy{})
	spikeAt, naiveAt = -1, -1
	lambda := c.ratePerMin / bucketsPerMinute
	var cand, n int64
	var wn float64
	for i := range c.buckets {
		w := c.share(i)
		b := Bucket{
			Start:     at(i),
			Share:     w,
			Candidate: poisson(rng, lambda*w*c.factor),
			Baseline:  poisson(rng, lambda*(1-w)),
		}
		m.Observe(b)
		if _, ok := m.SpikeAt(); ok && spikeAt < 0 {
			spikeAt = i
			if !withNaive {
				break
			}
		}
		if withNaive && naiveAt < 0 {
			cand += b.Candidate
			n += b.Candidate + b.Baseline
			wn += w * float64(b.Candidate+b.Baseline)
			if n >= DefaultMinEvents && BinomialUpperTail(cand, n, wn/float64(n)) < DefaultAlpha {
				naiveAt = i
			}
		}
	}
	return spikeAt, naiveAt, m.Verdict(at(c.buckets))
}

func TestNullFalseAlarmRateUnderContinuousMonitoring(t *testing.T) {
	const runs = 2000
	rng := rand.New(rand.NewPCG(20260301, 1))
	c := canary{ratePerMin: 6, share: steps, factor: 1, buckets: 180}
	var spikes, naive, verdictSpikes int
	for range runs {
		s, nv, v := c.run(rng, true)
		if s >= 0 {
			spikes++
		}
		if nv >= 0 {
			naive++
		}
		// Sticky: the final verdict is SPIKE exactly when it ever was.
		if v.Kind == core.VerdictSpike {
			verdictSpikes++
		}
	}
	if verdictSpikes != spikes {
		t.Fatalf("%d canaries ever spiked but %d end with a SPIKE verdict", spikes, verdictSpikes)
	}
	rate := float64(spikes) / runs
	// Ville's inequality bounds the true rate by alpha; allow three
	// binomial standard errors of sampling noise over the runs.
	bound := DefaultAlpha + 3*math.Sqrt(DefaultAlpha*(1-DefaultAlpha)/runs)
	t.Logf("healthy 30-minute canaries (6 errors/min, shares 10%%→25%%→50%%, checked every 10 s): "+
		"mSPRT ever SPIKE %d/%d = %.2f%% (bound %.2f%%); naive fixed 1%% binomial test ever fires %d/%d = %.1f%%",
		spikes, runs, 100*rate, 100*bound, naive, runs, 100*float64(naive)/runs)
	if rate > bound {
		t.Fatalf("false-alarm rate %.4f exceeds alpha + 3 s.e. = %.4f", rate, bound)
	}
}

func TestPowerThreeTimesAtQuarterShare(t *testing.T) {
	const runs = 500
	const deadline = 15 * time.Minute
	rng := rand.New(rand.NewPCG(20260301, 2))
	c := canary{ratePerMin: 4, share: func(int) float64 { return 0.25 }, factor: 3, buckets: 60 * bucketsPerMinute}
	var times []time.Duration
	caught := 0
	for range runs {
		s, _, _ := c.run(rng, false)
		if s >= 0 {
			d := time.Duration(s+1) * BucketWidth
			times = append(times, d)
			if d <= deadline {
				caught++
			}
		}
	}
	slices.Sort(times)
	t.Logf("3× regression at 25%% share, 4 errors/min baseline: caught within %v in %d/%d; median %v, p90 %v",
		deadline, caught, runs, quantile(times, runs, 0.5), quantile(times, runs, 0.9))
	if float64(caught) < 0.9*runs {
		t.Fatalf("caught within %v in only %d of %d canaries, want ≥ 90%%", deadline, caught, runs)
	}
}

// quantile returns the q-quantile of detection times over runs canaries,
// counting undetected ones as infinitely late (-1 when beyond the data).
func quantile(sorted []time.Duration, runs int, q float64) time.Duration {
	i := int(math.Ceil(q*float64(runs))) - 1
	if i >= len(sorted) {
		return -1
	}
	return sorted[max(i, 0)]
}

func fmtDetect(d time.Duration, limit time.Duration) string {
	if d < 0 {
		return fmt.Sprintf("> %.0fm", limit.Minutes())
	}
	return d.String()
}

func TestDetectionTable(t *testing.T) {
	const runs = 200
	const limit = 60 * time.Minute
	rng := rand.New(rand.NewPCG(20260301, 3))
	var sb strings.Builder
	sb.WriteString("\n| errors/min | share | factor | detected ≤ 60m | median | p90 |\n|---:|---:|---:|---:|---:|---:|\n")
	type key struct{ rate, share float64 }
	detected := map[key][]int{}
	for _, rate := range []float64{2, 6, 30} {
		for _, share := range []float64{0.1, 0.25, 0.5} {
			for _, factor := range []float64{1.5, 2, 3, 5} {
				c := canary{ratePerMin: rate, share: func(int) float64 { return share }, factor: factor,
					buckets: int(limit / BucketWidth)}
				var times []time.Duration
				for range runs {
					if s, _, _ := c.run(rng, false); s >= 0 {
						times = append(times, time.Duration(s+1)*BucketWidth)
					}
				}
				slices.Sort(times)
				k := key{rate, share}
				detected[k] = append(detected[k], len(times))
				fmt.Fprintf(&sb, "| %g | %g%% | %g× | %d%% | %s | %s |\n", rate, 100*share, factor,
					100*len(times)/runs, fmtDetect(quantile(times, runs, 0.5), limit), fmtDetect(quantile(times, runs, 0.9), limit))
			}
		}
	}
	t.Log(sb.String())
	// What users rely on: a larger regression is never harder to catch
	// (allowing 3% of simulation noise), and a 5× regression at 6 errors/min
	// or more is caught within the hour.
	for k, d := range detected {
		for i := 1; i < len(d); i++ {
			if d[i] < d[i-1]-runs*3/100 {
				t.Errorf("rate %g/min share %g: detections fall as the factor grows: %v", k.rate, k.share, d)
			}
		}
		if k.rate >= 6 && d[len(d)-1] < runs*99/100 {
			t.Errorf("rate %g/min share %g: 5× regression caught in only %d/%d", k.rate, k.share, d[len(d)-1], runs)
		}
	}
}
