package spike

import (
	"math"
	"math/big"
	"testing"

	"pgregory.net/rapid"
)

// exactUpperTail computes P[X ≥ k] for X ~ Bin(n, p) in exact rational
// arithmetic: the brute-force sum the fast code must agree with.
func exactUpperTail(k, n int64, p float64) float64 {
	pr := new(big.Rat).SetFloat64(p)
	qr := new(big.Rat).Sub(big.NewRat(1, 1), pr)
	sum := new(big.Rat)
	for j := max(k, 0); j <= n; j++ {
		term := new(big.Rat).SetInt(new(big.Int).Binomial(n, j))
		term.Mul(term, new(big.Rat).SetFrac(
			new(big.Int).Exp(pr.Num(), big.NewInt(j), nil),
			new(big.Int).Exp(pr.Denom(), big.NewInt(j), nil)))
		term.Mul(term, new(big.Rat).SetFrac(
			new(big.Int).Exp(qr.Num(), big.NewInt(n-j), nil),
			new(big.Int).Exp(qr.Denom(), big.NewInt(n-j), nil)))
		sum.Add(sum, term)
	}
	f, _ := sum.Float64()
	return f
}

func closeRel(got, want, rel float64) bool {
	if got == want {
		return true
	}
	return math.Abs(got-want) <= rel*math.Max(math.Abs(want), 1e-300)
}

func TestBinomialUpperTailMatchesExactSum(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.Int64Range(0, 60).Draw(t, "n")
		k := rapid.Int64Range(-2, n+2).Draw(t, "k")
		p := rapid.Float64Range(0.001, 0.999).Draw(t, "p")
		got := BinomialUpperTail(k, n, p)
		if got < 0 || got > 1 || math.IsNaN(got) {
			t.Fatalf("P[X≥%d | n=%d, p=%g] = %g, outside [0,1]", k, n, p, got)
		}
		want := exactUpperTail(k, n, p)
		if !closeRel(got, want, 1e-11) {
			t.Fatalf("P[X≥%d | n=%d, p=%g] = %.17g, exact sum %.17g", k, n, p, got, want)
		}
		low := BinomialLowerTail(k-1, n, p)
		if !closeRel(low, 1-want, 1e-11) && math.Abs(low-(1-want)) > 1e-15 {
			t.Fatalf("P[X≤%d] = %.17g, want %.17g", k-1, low, 1-want)
		}
	})
}

func TestBinomialTailLargeN(t *testing.T) {
	// At p = 1/2 the two tails are mirror images; at this size one is
	// summed directly and the other through the complement, so agreement
	// checks both paths (and the density) where lgamma differences would
	// have lost most digits.
	for _, n := range []int64{1_000_001, 1e9 + 1, 1e12 + 1} {
		sd := math.Sqrt(float64(n)) / 2
		for _, z := range []float64{0.5, 2, 5} {
			k := n/2 + int64(z*sd)
			up := BinomialUpperTail(k, n, 0.5)
			down := BinomialLowerTail(n-k, n, 0.5)
			if !closeRel(up, down, 1e-9) {
				t.Errorf("n=%d z=%g: P[X≥k]=%.15g but P[X≤n-k]=%.15g", n, z, up, down)
			}
			// And both agree with the normal tail to the accuracy the
			// central limit theorem promises at this n.
			normal := 0.5 * math.Erfc((float64(k)-0.5-float64(n)/2)/sd/math.Sqrt2)
			if !closeRel(up, normal, 1e-3) {
				t.Errorf("n=%d z=%g: P[X≥k]=%.6g, normal approximation %.6g", n, z, up, normal)
			}
		}
	}
	// The density sums to 1 over a large support.
	var s float64
	for k := int64(0); k <= 5000; k++ {
		s += math.Exp(logBinomPMF(k, 5000, 0.3))
	}
	if math.Abs(s-1) > 1e-12 {
		t.Errorf("Σ pmf = %.17g, want 1", s)
	}
}

func TestClopperPearsonKnownValues(t *testing.T) {
	// Reference values from the exact interval's published tables (and R's
	// binom.test), to 4 decimals.
	cases := []struct {
		k, n   int64
		lo, hi float64
	}{
		{5, 10, 0.1871, 0.8129},
		{0, 10, 0, 0.3085},
		{10, 10, 0.6915, 1},
		{1, 20, 0.0013, 0.2487},
		{50, 100, 0.3983, 0.6017},
	}
	for _, c := range cases {
		lo, hi := ClopperPearson(c.k, c.n, 0.95)
		if math.Abs(lo-c.lo) > 5e-5 || math.Abs(hi-c.hi) > 5e-5 {
			t.Errorf("CP(%d/%d) = [%.5f, %.5f], want [%.4f, %.4f]", c.k, c.n, lo, hi, c.lo, c.hi)
		}
	}
}

func TestClopperPearsonTailsAtBounds(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.Int64Range(1, 5000).Draw(t, "n")
		k := rapid.Int64Range(0, n).Draw(t, "k")
		lo, hi := ClopperPearson(k, n, 0.95)
		if !(0 <= lo && lo <= float64(k)/float64(n) && float64(k)/float64(n) <= hi && hi <= 1) {
			t.Fatalf("CP(%d/%d) = [%g, %g] does not contain %g", k, n, lo, hi, float64(k)/float64(n))
		}
		if k > 0 && math.Abs(BinomialUpperTail(k, n, lo)-0.025) > 1e-6 {
			t.Fatalf("P[X≥%d | lo=%g] = %g, want 0.025", k, lo, BinomialUpperTail(k, n, lo))
		}
		if k < n && math.Abs(BinomialLowerTail(k, n, hi)-0.025) > 1e-6 {
			t.Fatalf("P[X≤%d | hi=%g] = %g, want 0.025", k, hi, BinomialLowerTail(k, n, hi))
		}
	})
}
