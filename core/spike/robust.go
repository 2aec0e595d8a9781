package spike

import (
	"math"
	"slices"
)

// This file holds the model of how errors arrive when nothing changed: a
// robust rate per bucket and a dispersion scale, both learned from the
// baseline release's own history and from the canary's bucket totals.
//
// The rate sets a cap on how much one bucket may weigh in the capped
// reading of the counts (see Monitor.logUp and the HEALTHY test), so an
// incident (a hundred errors in ten seconds) counts as a few ordinary
// buckets' worth, not as a hundred independent errors. The dispersion
// says how clustered errors are: a client that retries five times, or a
// loop, sends the same error five times into one bucket. Those five events
// came from one release together, so they are worth one event of evidence,
// not five; the test divides each bucket's evidence by the dispersion.
//
// Both only ever lower a bucket's weight, and a bucket's weight is fixed
// before its split between the releases is looked at (from earlier buckets
// and from the bucket's total), so the test stays a supermartingale under
// "no regression": for a factor s in [0, 1], E[LR^s] ≤ E[LR]^s ≤ 1 by
// Jensen's inequality.

// historyBuckets is how many bucket totals the model keeps: an hour of
// 10 s buckets.
const historyBuckets = 360

// bucketCap is the raw count of one bucket that counts in full; events
// beyond it in the same bucket count nothing. It allows twice the usual
// rate (a 5× regression at 25% share doubles the total) plus four standard
// deviations of its noise, and a few clusters where errors are rare.
func bucketCap(lambda, phi float64) float64 {
	return 2*lambda + 4*math.Sqrt(phi*lambda) + 3*phi
}

// arrivals is the learned model of error arrivals per bucket.
type arrivals struct {
	series []float64 // bucket totals, oldest first, at most historyBuckets
	index  int64     // absolute index of the next total pushed, for pairing

	lambda  float64 // robust mean total per bucket
	phi     float64 // dispersion in use (≥ 1)
	phiHat  float64 // the raw estimate, for the evidence
	phiSE   float64
	phiSeen bool // whether a dispersion above 1 was detected
}

func newArrivals() *arrivals { return &arrivals{phi: 1, phiHat: 1} }

// push records one closed bucket's total and refits the model.
func (a *arrivals) push(total float64) {
	if len(a.series) == historyBuckets {
		copy(a.series, a.series[1:])
		a.series = a.series[:historyBuckets-1]
	}
	a.series = append(a.series, total)
	a.index++
	a.refit()
}

// minLearned is how many bucket totals the model needs before it caps a
// bucket: with less it does not know the usual rate, and a cap from a
// guess would throw real evidence away.
const minLearned = 30

// cap is the raw count of the next bucket that counts in full.
func (a *arrivals) cap() float64 {
	if len(a.series) < minLearned {
		return math.Inf(1)
	}
	return bucketCap(a.lambda, a.phi)
}

// refit estimates the rate and the dispersion from the series.
//
// The rate is a winsorised mean: totals above the cap of the current
// estimate are cut to it, and the estimate iterated from the median, so a
// single incident moves it by its cap's worth spread over the hour.
//
// The dispersion is the first-difference estimator over disjoint pairs of
// consecutive buckets, Σ(x₂-x₁)² / Σ(x₁+x₂), on winsorised totals. For
// Poisson arrivals its expectation is 1 whatever the rate does slowly
// (traffic rising through the day cancels in the difference); when every
// error arrives k times it is k. It is used only when it is clearly above
// 1 — two standard errors, estimated from the pairs themselves — and then
// one standard error is added, so a noisy estimate errs on the safe side.
// A lone incident does not pass that check: its pair dominates the
// standard error.
func (a *arrivals) refit() {
	n := len(a.series)
	if n == 0 {
		return
	}
	sorted := slices.Clone(a.series)
	slices.Sort(sorted)
	lambda := sorted[n/2]
	for range 5 {
		c := bucketCap(lambda, a.phi)
		var s float64
		for _, x := range a.series {
			s += math.Min(x, c)
		}
		lambda = s / float64(n)
	}
	a.lambda = lambda

	// Totals are cut at a generous cap for the dispersion, so clusters
	// keep their size and only incidents are cut.
	c := bucketCap(2*lambda, math.Max(a.phi, 4))
	// Pairs start at an even absolute index so they do not shift as the
	// series slides.
	first := 0
	if (a.index-int64(n))%2 != 0 {
		first = 1
	}
	var st, sd float64
	type pair struct{ t, d float64 }
	pairs := make([]pair, 0, n/2)
	for i := first; i+1 < n; i += 2 {
		x1, x2 := math.Min(a.series[i], c), math.Min(a.series[i+1], c)
		d := x1 + x2
		if d == 0 {
			continue
		}
		t := (x2 - x1) * (x2 - x1)
		st += t
		sd += d
		pairs = append(pairs, pair{t, d})
	}
	a.phi, a.phiHat, a.phiSE, a.phiSeen = 1, 1, 0, false
	// At least two pairs with errors and ten errors in them: fewer tell
	// a cluster from chance only by luck.
	if len(pairs) < 2 || sd < 10 {
		return
	}
	est := st / sd
	var v float64
	for _, p := range pairs {
		r := p.t - est*p.d
		v += r * r
	}
	se := math.Sqrt(v) / sd
	a.phiHat, a.phiSE = est, se
	if est-2*se > 1 {
		a.phi, a.phiSeen = est+se, true
	}
}
