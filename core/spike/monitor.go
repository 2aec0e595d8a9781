// Package spike decides whether a new release made errors worse, from error
// counts alone, and says why.
//
// # What is tested
//
// During a canary the candidate release takes a share w of the traffic and
// the stable (baseline) release the rest. If the candidate is no worse, its
// errors arrive at w/(1-w) times the baseline's rate, so — conditional on
// how many errors arrived in a bucket — each error came from the candidate
// with probability w. This needs no request counts and no model of the
// overall error rate, which may rise and fall with traffic: only the
// candidate's share of the errors matters. The alternative is a regression
// factor r > 1: the candidate's per-request error rate is r times the
// baseline's, so each error is the candidate's with probability
// p = w·r / (w·r + 1 - w).
//
// # Why always valid
//
// The verdict is looked at every 10 s bucket for the whole canary. A
// fixed-sample test at level alpha checked that often false-alarms several
// times more than alpha (in this package's simulations a 1% binomial test
// on the running totals fires in about 5% of healthy 30-minute canaries at
// 6 errors/min, and the more looks, the worse). So the decision
// uses a mixture sequential probability ratio test: for each factor r on a
// grid, the running product over buckets of (p/w)^c · ((1-p)/(1-w))^b (c
// candidate and b baseline errors) is a test martingale under "no
// regression" — its expected value stays 1 — and so is their prior-weighted
// average, the evidence ratio. By Ville's inequality, the chance that the
// evidence ratio ever reaches 1/alpha, however often it is looked at and
// however long the canary runs, is at most alpha. That is when SPIKE is
// called. The share may change between buckets (steps of 10%, 25%, 50%)
// since each bucket's factor uses the share in force for that bucket.
//
// # What the evidence means
//
// SPIKE means the evidence ratio reached 1/alpha: data this lopsided turn
// up in a healthy release less than alpha of the time. It is sticky — once
// called it stays for the canary, because the guarantee is about the first
// crossing and errors settling later does not undo a regression seen.
// INCONCLUSIVE means fewer than MinEvents errors arrived: too little to say
// anything, and never read as healthy. HEALTHY means "no evidence of
// regression so far", not "proved equal": Evidence.RateRatioHigh is the
// 95% upper bound on how much worse the candidate could still be.
//
// The rate ratio, its interval and the window p-value are descriptive:
// they summarise all errors so far as if it were one fixed sample (exact
// Clopper–Pearson interval and exact binomial tail), so they do not carry
// the always-valid guarantee — only the evidence ratio does. When the share
// changed during the canary they use the error-weighted average share, which
// under no regression is the expected candidate share of the errors; the
// binomial is then slightly wider than the true (Poisson-binomial) null, so
// the p-value errs on the large side.
//
// Fingerprints first seen in the candidate are listed but never call SPIKE
// on their own; see NewIssues.
package spike

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// Defaults of a Policy's zero fields.
const (
	// DefaultAlpha is the false-alarm bound: across all healthy canaries,
	// at most 1% ever show SPIKE.
	DefaultAlpha = 0.01
	// DefaultMinEvents is how many errors (candidate and baseline
	// together) are needed before the verdict is anything but inconclusive.
	DefaultMinEvents = 10
	// BucketWidth is the width of the ingest's count buckets. CompareWindows
	// uses it to report elapsed time.
	BucketWidth = 10 * time.Second
	// Unbounded stands for a rate ratio the data cannot bound (no baseline
	// errors). It is finite so evidence stays JSON-encodable.
	Unbounded = math.MaxFloat64
	// intervalLevel is the coverage of the descriptive rate-ratio interval.
	intervalLevel = 0.95
	// shareGroups is how finely shares are grouped for the rate-ratio
	// estimate (0.1 percentage point), which bounds its memory.
	shareGroups = 1000
)

// DefaultGrid is the set of regression factors the evidence ratio mixes
// over with equal weights: it reacts quickly to large regressions and
// still accumulates evidence for a 25% one.
var DefaultGrid = []float64{1.25, 1.5, 2, 3, 5, 8, 13, 20}

// Policy tunes the verdict. Zero fields take the defaults.
type Policy struct {
	// Alpha bounds the chance that a healthy canary ever shows SPIKE;
	// SPIKE is called when the evidence ratio reaches 1/Alpha. Values
	// outside (0, 1) mean DefaultAlpha (0.01).
	Alpha float64
	// MinEvents is how many errors must arrive before the verdict is
	// healthy or spike; below it the verdict is inconclusive. Values ≤ 0
	// mean DefaultMinEvents (10).
	MinEvents int64
	// Grid lists the regression factors (each > 1) mixed with equal
	// weights. Empty, or with no usable entry, means DefaultGrid.
	Grid []float64
}

func (p Policy) normalized() Policy {
	if !(p.Alpha > 0 && p.Alpha < 1) {
		p.Alpha = DefaultAlpha
	}
	if p.MinEvents <= 0 {
		p.MinEvents = DefaultMinEvents
	}
	var grid []float64
	for _, r := range p.Grid {
		if r > 1 && !math.IsInf(r, 0) {
			grid = append(grid, r)
		}
	}
	if len(grid) == 0 {
		grid = DefaultGrid
	}
	p.Grid = grid
	return p
}

// Bucket is one closed bucket of error counts during a canary.
type Bucket struct {
	Start time.Time
	// Share is the candidate's traffic share in the bucket, 0..1 (a
	// deployment's Weight divided by 100).
	Share     float64
	Candidate int64 // errors from the candidate release
	Baseline  int64 // errors from the stable release
}

// shareGroup accumulates buckets whose shares round to the same 0.1%.
type shareGroup struct {
	key        int
	cand, base int64
	share      float64 // the first share seen
	mixed      bool    // whether other shares fell in the group too
	wn         float64 // Σ share·events, the group's share when mixed
}

// weight returns Σ share·events of the group, exactly n·share when every
// bucket had the same share, so the result does not depend on the order
// buckets arrived in.
func (g *shareGroup) weight() float64 {
	if !g.mixed {
		return float64(g.cand+g.base) * g.share
	}
	return g.wn
}

// Monitor keeps the running evidence of one canary. Feed it each closed
// bucket once, in any order; Verdict can be asked at any time. Observe
// costs O(len(grid)) and memory stays bounded. It is safe for concurrent
// use.
//
// A still-open bucket may instead be fed in parts: each time, only the
// errors that arrived since its previous part, with the same Start. The
// evidence is a product over individual errors, so parts add up to
// exactly what the whole bucket would give, and the verdict can be called
// as soon as the evidence is there instead of when the bucket closes.
// Parts with the same Start fed one after another count as one bucket in
// the plain share average used before any error arrived.
type Monitor struct {
	mu        sync.Mutex
	ref       core.Ref
	candidate string
	baseline  string
	start     time.Time
	alpha     float64
	minEvents int64

	logR     []float64 // log r for each grid factor
	rMinus1  []float64 // r - 1, for log1p(w·(r-1))
	logPrior float64   // log of each factor's equal weight
	logLR    []float64 // running log likelihood ratio per factor

	// Cache of log1p(w·(r-1)) for the last share seen: shares change only
	// at rollout steps, so most buckets reuse it.
	cachedShare float64
	cachedLog1p []float64

	cand, base int64
	shareSum   float64 // Σ share, for the average when no errors arrived
	buckets    int64
	lastStart  time.Time // Start of the latest Observe, so parts of one bucket count once
	minShare   float64
	maxShare   float64
	groups     []shareGroup // sorted by key, so sums do not depend on arrival order

	spiked    bool
	spikeAt   time.Time
	spikeLLR  float64
	newIssues []core.ErrorIssue
}

// NewMonitor starts the evidence of a canary of candidate against baseline
// in ref, begun at start.
func NewMonitor(ref core.Ref, candidate, baseline string, p Policy, start time.Time) *Monitor {
	p = p.normalized()
	m := &Monitor{
		ref:         ref,
		candidate:   candidate,
		baseline:    baseline,
		start:       start,
		alpha:       p.Alpha,
		minEvents:   p.MinEvents,
		logR:        make([]float64, len(p.Grid)),
		rMinus1:     make([]float64, len(p.Grid)),
		logPrior:    -math.Log(float64(len(p.Grid))),
		logLR:       make([]float64, len(p.Grid)),
		cachedShare: math.NaN(),
		cachedLog1p: make([]float64, len(p.Grid)),
	}
	for i, r := range p.Grid {
		m.logR[i] = math.Log(r)
		m.rMinus1[i] = r - 1
	}
	return m
}

// Observe adds one closed bucket, or a part of an open one (see Monitor). Buckets with share 0 or 1 (or outside
// it) carry no information about the comparison and are skipped, as are
// buckets with negative counts. The monitor does not deduplicate: observe
// each bucket once.
func (m *Monitor) Observe(b Bucket) {
	w := b.Share
	if !(w > 0 && w < 1) || b.Candidate < 0 || b.Baseline < 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	newBucket := m.buckets == 0 || !b.Start.Equal(m.lastStart)
	if newBucket {
		m.buckets++
		m.shareSum += w
		m.lastStart = b.Start
	}
	if newBucket && m.buckets == 1 {
		m.minShare, m.maxShare = w, w
	} else {
		m.minShare, m.maxShare = math.Min(m.minShare, w), math.Max(m.maxShare, w)
	}
	n := b.Candidate + b.Baseline
	if n == 0 {
		return // a bucket without errors multiplies every factor by 1
	}
	if w != m.cachedShare {
		for i, d := range m.rMinus1 {
			m.cachedLog1p[i] = math.Log1p(w * d)
		}
		m.cachedShare = w
	}
	// (p/w)^c · ((1-p)/(1-w))^b with p = wr/(wr+1-w) simplifies to
	// r^c / (1 + w(r-1))^(c+b).
	c, fn := float64(b.Candidate), float64(n)
	top := math.Inf(-1)
	for i := range m.logLR {
		m.logLR[i] += c*m.logR[i] - fn*m.cachedLog1p[i]
		top = math.Max(top, m.logLR[i])
	}
	m.cand += b.Candidate
	m.base += b.Baseline
	key := int(math.Round(w * shareGroups))
	gi, found := slices.BinarySearchFunc(m.groups, key, func(g shareGroup, k int) int { return cmp.Compare(g.key, k) })
	if !found {
		m.groups = slices.Insert(m.groups, gi, shareGroup{key: key, share: w})
	}
	g := &m.groups[gi]
	g.cand += b.Candidate
	g.base += b.Baseline
	g.wn += w * fn
	if w != g.share {
		g.mixed = true
	}

	// The mixture never exceeds its largest component, so the full
	// log-sum-exp is needed only once some factor alone reaches 1/alpha.
	threshold := -math.Log(m.alpha)
	if !m.spiked && m.cand+m.base >= m.minEvents && top >= threshold {
		if llr := m.logMixture(); llr >= threshold {
			m.spiked, m.spikeAt, m.spikeLLR = true, b.Start, llr
		}
	}
}

// logMixture returns the log of the equal-weight mixture of the factors'
// likelihood ratios, by log-sum-exp.
func (m *Monitor) logMixture() float64 {
	top := math.Inf(-1)
	for _, l := range m.logLR {
		top = math.Max(top, l)
	}
	var s float64
	for _, l := range m.logLR {
		s += math.Exp(l - top)
	}
	return m.logPrior + top + math.Log(s)
}

// SetNewIssues records the fingerprints first seen in the candidate (see
// NewIssues) so the verdict's evidence lists them.
func (m *Monitor) SetNewIssues(issues []core.ErrorIssue) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.newIssues = append([]core.ErrorIssue(nil), issues...)
}

// SpikeAt reports whether SPIKE has been called and the start of the
// bucket whose observation called it.
func (m *Monitor) SpikeAt() (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.spikeAt, m.spiked
}

// EvidenceRatio returns the current mixture likelihood ratio (1 before any
// error arrived), capped at the largest float64.
func (m *Monitor) EvidenceRatio() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return expCapped(m.logMixture())
}

func expCapped(x float64) float64 { return math.Min(math.Exp(x), math.MaxFloat64) }

// Verdict returns the verdict and its evidence as of now.
func (m *Monitor) Verdict(now time.Time) core.SpikeVerdict {
	m.mu.Lock()
	defer m.mu.Unlock()

	total := m.cand + m.base
	share := m.averageShare()
	ev := core.Evidence{
		CandidateCount: m.cand,
		BaselineCount:  m.base,
		Share:          share,
		EvidenceRatio:  expCapped(m.logMixture()),
		Threshold:      1 / m.alpha,
		Elapsed:        max(now.Sub(m.start), 0),
		NewIssues:      append([]core.ErrorIssue(nil), m.newIssues...),
		PValue:         1,
		RateRatioHigh:  Unbounded,
	}
	if total > 0 && share > 0 {
		ev.PValue = BinomialUpperTail(m.cand, total, share)
		ev.RateRatio = m.rateRatioMLE()
		lo, hi := ClopperPearson(m.cand, total, intervalLevel)
		ev.RateRatioLow = shareToRatio(lo, share)
		ev.RateRatioHigh = shareToRatio(hi, share)
	}

	var notes []string
	kind := core.VerdictHealthy
	switch {
	case m.spiked:
		kind = core.VerdictSpike
		notes = append(notes, fmt.Sprintf(
			"spike called %s into the canary when the evidence ratio reached %s (threshold %s); it stays spike for this canary even if errors settle",
			max(m.spikeAt.Sub(m.start), 0).Round(time.Second), fmtNum(expCapped(m.spikeLLR)), fmtNum(ev.Threshold)))
	case total < m.minEvents:
		kind = core.VerdictInconclusive
		notes = append(notes, fmt.Sprintf("%d of the %d errors needed for a verdict so far", total, m.minEvents))
	default:
		bound := "cannot yet be bounded (no baseline errors)"
		if ev.RateRatioHigh < Unbounded {
			bound = fmt.Sprintf("up to %.2f× the baseline's error rate is still possible (95%% upper bound)", ev.RateRatioHigh)
		}
		notes = append(notes, "no evidence of regression so far; "+bound)
	}
	if m.buckets > 0 && m.maxShare-m.minShare > 1e-9 {
		notes = append(notes, fmt.Sprintf(
			"share varied %.0f%%–%.0f%%: the interval and p-value use the error-weighted average share",
			100*m.minShare, 100*m.maxShare))
	}
	if n := len(m.newIssues); n > 0 {
		notes = append(notes, fmt.Sprintf(
			"%d fingerprint(s) first seen in %s; they count in the rates but do not call spike on their own",
			n, m.candidate))
	}
	return core.SpikeVerdict{
		Ref:       m.ref,
		Candidate: m.candidate,
		Baseline:  m.baseline,
		Kind:      kind,
		Evidence:  withNote(ev, notes),
		At:        now,
	}
}

func withNote(ev core.Evidence, notes []string) core.Evidence {
	ev.Note = strings.Join(notes, "; ")
	return ev
}

// averageShare is the error-weighted mean share — under no regression the
// expected candidate share of the errors — or the plain mean over buckets
// when no error arrived yet.
func (m *Monitor) averageShare() float64 {
	switch {
	case m.buckets > 0 && m.minShare == m.maxShare:
		return m.minShare
	case m.cand+m.base > 0:
		var wn float64
		for i := range m.groups {
			wn += m.groups[i].weight()
		}
		return wn / float64(m.cand+m.base)
	case m.buckets > 0:
		return m.shareSum / float64(m.buckets)
	}
	return 0
}

// shareToRatio maps the candidate's share q of errors to the rate ratio r
// that produces it at traffic share w: q = wr/(wr+1-w).
func shareToRatio(q, w float64) float64 {
	if q >= 1 {
		return Unbounded
	}
	return math.Min(q/(1-q)*(1-w)/w, Unbounded)
}

// rateRatioMLE maximises the likelihood of the counts over r. With share
// groups g, logit p_g = logit w_g + log r, so the score equation is
// Σ n_g p_g(r) = candidate count, monotone in log r: solved by bisection.
// For a constant share this is (c/b)·(1-w)/w.
func (m *Monitor) rateRatioMLE() float64 {
	switch {
	case m.cand == 0:
		return 0
	case m.base == 0:
		return Unbounded
	}
	if len(m.groups) == 1 {
		w := m.averageShare()
		return float64(m.cand) / float64(m.base) * (1 - w) / w
	}
	expected := func(theta float64) float64 {
		var s float64
		for i := range m.groups {
			g := &m.groups[i]
			n := float64(g.cand + g.base)
			w := g.weight() / n
			s += n / (1 + math.Exp(-(math.Log(w/(1-w)) + theta)))
		}
		return s
	}
	target := float64(m.cand)
	lo, hi := -60.0, 60.0
	for range 100 {
		mid := (lo + hi) / 2
		if expected(mid) < target {
			lo = mid
		} else {
			hi = mid
		}
	}
	return math.Exp((lo + hi) / 2)
}

// fmtNum prints an evidence ratio readably at any size.
func fmtNum(x float64) string {
	if x >= 1e6 {
		return fmt.Sprintf("%.2g", x)
	}
	return fmt.Sprintf("%.0f", x)
}
