package core

import (
	"math"
	"testing"
)

// A baseline with no errors makes the ratio unbounded: a person reads ∞,
// never a 300-digit number.
func TestEvidenceRatioText(t *testing.T) {
	for _, c := range []struct {
		e              Evidence
		ratio, between string
	}{
		{Evidence{RateRatio: 6.24, RateRatioLow: 3.1, RateRatioHigh: 12.4}, "6.2×", "3.1–12.4"},
		{Evidence{RateRatio: math.MaxFloat64, RateRatioLow: 2.5, RateRatioHigh: math.MaxFloat64}, "∞×", "≥ 2.5"},
		{Evidence{RateRatio: math.Inf(1), RateRatioLow: 0.4, RateRatioHigh: math.Inf(1)}, "∞×", "≥ 0.4"},
	} {
		if got := c.e.Ratio(); got != c.ratio {
			t.Errorf("Ratio(%v) = %q, want %q", c.e.RateRatio, got, c.ratio)
		}
		if got := c.e.Interval(); got != c.between {
			t.Errorf("Interval(%v–%v) = %q, want %q", c.e.RateRatioLow, c.e.RateRatioHigh, got, c.between)
		}
	}
}
