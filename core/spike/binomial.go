package spike

import "math"

// This file holds the exact binomial arithmetic behind the window p-value
// and the Clopper–Pearson interval. Probabilities are computed in log space
// with Loader's saddle-point form of the binomial density ("Fast and
// accurate computation of binomial probabilities", 2000; the algorithm R's
// dbinom uses). The textbook form lgamma(n+1) - lgamma(k+1) - lgamma(n-k+1)
// subtracts numbers near n·log n, so at n = 1e12 it keeps only two or three
// correct digits; Loader's form uses math.Lgamma only for small arguments
// and a Stirling series with an explicit deviance term otherwise, so it
// stays accurate to about 1e-14 relative at any n.

const (
	ln2Pi     = 1.8378770664093454835606594728112352797227949472755668 // log(2π)
	lnSqrt2Pi = 0.9189385332046727417803297364056176398613974736377834 // log(sqrt(2π))
)

// stirlerr returns log(n!) - log(sqrt(2πn)·(n/e)^n), the error of
// Stirling's formula, for n ≥ 1.
func stirlerr(n float64) float64 {
	const (
		s0 = 1.0 / 12
		s1 = 1.0 / 360
		s2 = 1.0 / 1260
		s3 = 1.0 / 1680
		s4 = 1.0 / 1188
	)
	if n <= 15 {
		lg, _ := math.Lgamma(n + 1)
		return lg - (n+0.5)*math.Log(n) + n - lnSqrt2Pi
	}
	nn := n * n
	switch {
	case n > 500:
		return (s0 - s1/nn) / n
	case n > 80:
		return (s0 - (s1-s2/nn)/nn) / n
	case n > 35:
		return (s0 - (s1-(s2-s3/nn)/nn)/nn) / n
	}
	return (s0 - (s1-(s2-(s3-s4/nn)/nn)/nn)/nn) / n
}

// bd0 returns the deviance term x·log(x/m) + m - x without the
// cancellation the direct formula suffers when x is close to m.
func bd0(x, m float64) float64 {
	if math.Abs(x-m) < 0.1*(x+m) {
		v := (x - m) / (x + m)
		s := (x - m) * v
		ej := 2 * x * v
		v *= v
		for j := 1; j < 1000; j++ {
			ej *= v
			s1 := s + ej/float64(2*j+1)
			if s1 == s {
				return s1
			}
			s = s1
		}
		return s
	}
	return x*math.Log(x/m) + m - x
}

// logBinomPMF returns log P[X = k] for X ~ Bin(n, p), -Inf where the
// probability is zero.
func logBinomPMF(k, n int64, p float64) float64 {
	if k < 0 || k > n {
		return math.Inf(-1)
	}
	q := 1 - p
	if p <= 0 {
		if k == 0 {
			return 0
		}
		return math.Inf(-1)
	}
	if q <= 0 {
		if k == n {
			return 0
		}
		return math.Inf(-1)
	}
	fn, fk := float64(n), float64(k)
	if k == 0 {
		if n == 0 {
			return 0
		}
		if p < 0.1 {
			return -bd0(fn, fn*q) - fn*p
		}
		return fn * math.Log1p(-p)
	}
	if k == n {
		if q < 0.1 {
			return -bd0(fn, fn*p) - fn*q
		}
		return fn * math.Log(p)
	}
	lc := stirlerr(fn) - stirlerr(fk) - stirlerr(fn-fk) - bd0(fk, fn*p) - bd0(fn-fk, fn*q)
	lf := ln2Pi + math.Log(fk) + math.Log1p(-fk/fn)
	return lc - 0.5*lf
}

// BinomialUpperTail returns P[X ≥ k] for X ~ Bin(n, p): the exact
// one-sided p-value of seeing k or more of n events on one side when each
// lands there with probability p.
//
// It sums the density from k outward, starting from the side of the mean
// where terms shrink (and taking the complement when k is below the mean),
// so it needs O(sqrt(n·p·(1-p))) terms rather than O(n), and stops when
// the rest of the tail is provably below 1e-17 of the sum (the binomial
// density is log-concave, so the term ratios only fall). Results smaller
// than the smallest float64 underflow to 0.
func BinomialUpperTail(k, n int64, p float64) float64 {
	switch {
	case n < 0 || math.IsNaN(p):
		return math.NaN()
	case k <= 0:
		return 1
	case k > n:
		return 0
	case p <= 0:
		return 0
	case p >= 1:
		return 1
	}
	if float64(k) > float64(n)*p {
		return math.Exp(logTailUp(k, n, p))
	}
	// k is at or below the mean: P[X ≥ k] = 1 - P[X ≤ k-1], and the
	// lower tail from k-1 downwards has shrinking terms.
	return clamp01(-math.Expm1(logTailDown(k-1, n, p)))
}

// BinomialLowerTail returns P[X ≤ k] for X ~ Bin(n, p).
func BinomialLowerTail(k, n int64, p float64) float64 {
	switch {
	case n < 0 || math.IsNaN(p):
		return math.NaN()
	case k < 0:
		return 0
	case k >= n:
		return 1
	case p <= 0:
		return 1
	case p >= 1:
		return 0
	}
	if float64(k) < float64(n)*p {
		return math.Exp(logTailDown(k, n, p))
	}
	return clamp01(-math.Expm1(logTailUp(k+1, n, p)))
}

// logTailUp returns log P[X ≥ k] for k above the mean, 0 < k ≤ n.
func logTailUp(k, n int64, p float64) float64 {
	first := logBinomPMF(k, n, p)
	odds := p / (1 - p)
	sum, term := 1.0, 1.0
	for j := k; j < n; j++ {
		ratio := float64(n-j) / float64(j+1) * odds
		term *= ratio
		sum += term
		// Ratios fall as j grows, so the rest is at most a geometric
		// series with this ratio.
		if ratio < 1 && term*ratio/(1-ratio) < sum*1e-17 {
			break
		}
		if term == 0 {
			break
		}
	}
	return first + math.Log(sum)
}

// logTailDown returns log P[X ≤ k] for k below the mean, 0 ≤ k < n.
func logTailDown(k, n int64, p float64) float64 {
	first := logBinomPMF(k, n, p)
	invOdds := (1 - p) / p
	sum, term := 1.0, 1.0
	for j := k; j > 0; j-- {
		ratio := float64(j) / float64(n-j+1) * invOdds
		term *= ratio
		sum += term
		if ratio < 1 && term*ratio/(1-ratio) < sum*1e-17 {
			break
		}
		if term == 0 {
			break
		}
	}
	return first + math.Log(sum)
}

func clamp01(x float64) float64 { return math.Min(1, math.Max(0, x)) }

// ClopperPearson returns the exact two-sided interval with coverage at
// least conf for a binomial proportion after k successes in n trials:
// lo solves P[X ≥ k | lo] = (1-conf)/2 and hi solves P[X ≤ k | hi] =
// (1-conf)/2, found by bisection on the exact tails. With n = 0 it is
// [0, 1].
func ClopperPearson(k, n int64, conf float64) (lo, hi float64) {
	if n <= 0 {
		return 0, 1
	}
	k = min(max(k, 0), n)
	tail := (1 - conf) / 2
	lo, hi = 0, 1
	if k > 0 {
		// P[X ≥ k | p] rises with p.
		lo = bisect(func(p float64) bool { return BinomialUpperTail(k, n, p) >= tail })
	}
	if k < n {
		// P[X ≤ k | p] falls with p; hi is where it drops to tail.
		hi = bisect(func(p float64) bool { return BinomialLowerTail(k, n, p) <= tail })
	}
	return lo, hi
}

// bisect returns the smallest p in (0, 1) where the monotone predicate
// becomes true, to about 1e-15.
func bisect(reached func(p float64) bool) float64 {
	a, b := 0.0, 1.0
	for range 64 {
		m := (a + b) / 2
		if m == a || m == b {
			break
		}
		if reached(m) {
			b = m
		} else {
			a = m
		}
	}
	return (a + b) / 2
}
