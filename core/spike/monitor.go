// Package spike decides whether a new release made errors worse, from error
// counts alone, and says why.
//
// # What is compared
//
// During a canary the candidate release takes a share w of the traffic and
// the stable (baseline) release the rest. If the candidate's per-request
// error rate is ρ times the baseline's, then — conditional on how many
// errors arrived in a bucket — each error came from the candidate with
// probability p(ρ) = wρ / (wρ + 1 - w). This needs no request counts and
// no model of the overall error rate, which rises and falls with traffic:
// only the candidate's share of the errors matters. ρ is the rate ratio.
//
// # The three verdicts and what each guarantees
//
// The verdict is looked at after every bucket (and every part of one) for
// the whole canary, so both tests are always valid: their error bounds
// hold however often they are looked at and however long the canary runs.
// Each is a mixture of likelihood ratios, a test martingale under its null
// hypothesis; by Ville's inequality the chance that it ever reaches
// 1/alpha is at most alpha.
//
//   - SPIKE: the test of "ρ ≤ 1" against regressions of 1.5×–5× crossed
//     1/alpha. A candidate that is no worse than the baseline shows SPIKE
//     at any moment of its canary with probability at most alpha (1%). It
//     is sticky for the canary: the guarantee is about the first crossing.
//   - HEALTHY: the test of "ρ ≥ tolerance" against smaller ratios crossed
//     1/alpha, which is the same as the always-valid upper confidence
//     bound on ρ being below the tolerance: "no worse than 1.5× with 99%
//     confidence". A candidate that is 1.5× worse (or more) shows HEALTHY
//     at any moment with probability at most alpha.
//   - INCONCLUSIVE: neither. The evidence says how much longer the canary
//     would need at the current error rate.
//
// The confidence bounds in the evidence (RateRatioLow, RateRatioHigh) are
// the same always-valid bounds, each side at level 1-alpha; the rate ratio
// itself is the maximum-likelihood estimate. The window p-value is the
// exact binomial tail of all errors so far taken as one fixed sample: it is
// descriptive only and carries no guarantee under repeated looks.
//
// # What the guarantees assume, and how the test protects them
//
// Errors of the two releases arrive independently given the traffic, and
// the share is what the target says it is. Two common breaches are
// handled (see robust.go): errors that arrive in clusters (retries,
// loops) — the dispersion learned from the baseline's history divides
// every bucket's evidence — and incidents. An incident cannot move the
// HEALTHY test by more than e² in one bucket, and the SPIKE test mixes
// two readings of the counts: in full (weight 0.8), so a burst from the
// candidate counts at once, and capped at a few ordinary buckets' worth
// (0.2), so a burst on the baseline's side cannot bury a regression that
// follows it. Each only weakens the evidence, so the bounds above still
// hold; the price is speed when errors cluster.
//
// # Speed
//
// The SPIKE mixture puts its weight on the regressions that matter,
// 1.5×, 2×, 3× and 5×; a larger one is caught through the 5× component
// almost as fast. The simulation in sim_test.go compares the time to
// SPIKE with the oracle sequential test that knows the true ratio.
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
	// DefaultAlpha bounds each verdict's error: a healthy candidate ever
	// shows SPIKE, or a candidate at or beyond the tolerance ever shows
	// HEALTHY, with probability at most 1%.
	DefaultAlpha = 0.01
	// DefaultTolerance is the rate ratio HEALTHY rules out.
	DefaultTolerance = 1.5
	// DefaultMinEvents is how many errors (candidate and baseline
	// together) must arrive before SPIKE or HEALTHY is called.
	DefaultMinEvents = 5
	// BucketWidth is the width of the ingest's count buckets, and of a
	// source's until it says otherwise.
	BucketWidth = 10 * time.Second
	// Unbounded stands for a rate ratio the data cannot bound (no
	// baseline errors). It is finite so evidence stays JSON-encodable.
	Unbounded = math.MaxFloat64
)

// Alternative is one rate ratio a test mixes over, with its prior weight.
type Alternative struct {
	Factor float64
	Weight float64
}

// DefaultAlternatives are the regressions the SPIKE test is tuned for.
// A component's weight π costs ln(1/π) nats of evidence against the
// oracle test that knows the ratio, on a threshold of ln(1/alpha) = 4.6;
// 3× sits between its neighbours, which carry it, so it needs less.
var DefaultAlternatives = []Alternative{{1.5, 0.3}, {2, 0.25}, {3, 0.15}, {5, 0.3}}

// focusHorizon is how long a canary is expected to run at most. A
// regression the oracle test could not tell apart within it at the
// learned error rate gets no prior weight, which goes to those that can.
const focusHorizon = time.Hour

// healthyAlternatives are the ratios, relative to the tolerance, that the
// HEALTHY test mixes over: for a tolerance of 1.5, a candidate as good as
// the baseline (1.0), somewhat better (0.75) and much better (0.5).
var healthyAlternatives = []Alternative{{1 / 1.5, 0.5}, {0.5, 0.3}, {1.0 / 3, 0.2}}

// Policy tunes the verdict. Zero fields take the defaults.
type Policy struct {
	// Alpha bounds the chance of a wrong SPIKE and of a wrong HEALTHY
	// over the whole canary. Values outside (0, 0.5] mean DefaultAlpha.
	Alpha float64
	// Tolerance is the rate ratio HEALTHY must rule out with confidence
	// 1-Alpha. Values ≤ 1 mean DefaultTolerance.
	Tolerance float64
	// MinEvents is how many errors must arrive before the verdict is
	// SPIKE or HEALTHY. Values ≤ 0 mean DefaultMinEvents.
	MinEvents int64
	// Alternatives are the regressions (each factor > 1) the SPIKE test
	// mixes over; weights are normalised. Empty, or with no usable entry,
	// means DefaultAlternatives.
	Alternatives []Alternative
}

func (p Policy) normalized() Policy {
	if !(p.Alpha > 0 && p.Alpha <= 0.5) {
		p.Alpha = DefaultAlpha
	}
	if !(p.Tolerance > 1) || math.IsInf(p.Tolerance, 0) {
		p.Tolerance = DefaultTolerance
	}
	if p.MinEvents <= 0 {
		p.MinEvents = DefaultMinEvents
	}
	var alts []Alternative
	var sum float64
	for _, a := range p.Alternatives {
		if a.Factor > 1 && !math.IsInf(a.Factor, 0) && a.Weight > 0 && !math.IsInf(a.Weight, 0) {
			alts = append(alts, a)
			sum += a.Weight
		}
	}
	if len(alts) == 0 {
		alts = slices.Clone(DefaultAlternatives)
		sum = 1
	}
	for i := range alts {
		alts[i].Weight /= sum
	}
	p.Alternatives = alts
	return p
}

// Bucket is the error counts of one bucket, or of a part of one, during a
// canary.
type Bucket struct {
	Start time.Time
	// Share is the candidate's traffic share in force, 0..1 (a
	// deployment's Weight divided by 100).
	Share     float64
	Candidate int64 // errors from the candidate release
	Baseline  int64 // errors from the stable release
	// At is when these counts were seen; a crossing is stamped with it.
	// Zero means the end of the bucket.
	At time.Time
}

// group holds the evidence gathered at one share.
type group struct {
	w          float64
	cEff, nEff float64 // counts weighted for clustering and capped per bucket
	cAll, nAll float64 // counts weighted for clustering only
	c, n       int64   // raw counts
	// downLog[k][j] is log1p(w(ρ_k·g_j - 1)) - log1p(w(ρ_k - 1)) for the
	// HEALTHY grid: what one event costs alternative j against ratio ρ_k.
	downLog [][]float64
}

// component is one alternative of a mixture in log form.
type component struct {
	factor, logWeight float64
}

// Monitor keeps the running evidence of one canary. Feed it buckets in
// time order; Verdict can be asked at any time. It is safe for concurrent
// use.
//
// A still-open bucket may be fed in parts: each time, only the errors that
// arrived since its previous part, with the same Start, so the verdict can
// be called as soon as the evidence is there. A bucket's weight (its cap
// and the dispersion) is fixed when its first part arrives.
type Monitor struct {
	mu           sync.Mutex
	ref          core.Ref
	candidate    string
	baseline     string
	start        time.Time
	alpha        float64
	logThreshold float64
	tolerance    float64
	minEvents    int64
	up, down     []component
	alts         []Alternative // the SPIKE alternatives as configured
	focused      bool
	dropped      []float64 // factors the focus left out

	width  time.Duration
	arr    *arrivals
	groups []group // sorted by share

	// The HEALTHY test and the upper bound, on a grid of ratios ρ_k:
	// closed[k][j] sums, over closed buckets, each bucket's log likelihood
	// ratio of ρ_k·g_j against ρ_k, capped at stepCap; open[k][j] is the
	// open bucket's, uncapped so far.
	rhos    []float64
	tauAt   int
	stepCap float64
	closed  [][]float64
	openLLR [][]float64

	// The bucket being fed.
	open     bool
	curStart time.Time
	curRaw   float64 // raw events fed into it so far
	curCap   float64
	curPhi   float64

	cand, base int64
	downWeight float64 // raw events that counted less than in full
	tempered   bool    // whether any events counted less than in full
	buckets    int64
	shareSum   float64
	minShare   float64
	maxShare   float64
	lastShare  float64

	spiked    bool
	spikeAt   time.Time
	spikeLLR  float64
	spikeLow  float64
	newIssues []core.ErrorIssue
}

// NewMonitor starts the evidence of a canary of candidate against baseline
// in ref, whose candidate began receiving its share of traffic at start.
func NewMonitor(ref core.Ref, candidate, baseline string, p Policy, start time.Time) *Monitor {
	p = p.normalized()
	m := &Monitor{
		ref:          ref,
		candidate:    candidate,
		baseline:     baseline,
		start:        start,
		alpha:        p.Alpha,
		logThreshold: -math.Log(p.Alpha),
		tolerance:    p.Tolerance,
		minEvents:    p.MinEvents,
		width:        BucketWidth,
		arr:          newArrivals(),
	}
	m.alts = p.Alternatives
	for _, a := range p.Alternatives {
		m.up = append(m.up, component{factor: a.Factor, logWeight: math.Log(a.Weight)})
	}
	for _, a := range healthyAlternatives {
		m.down = append(m.down, component{factor: a.Factor, logWeight: math.Log(a.Weight)})
	}
	m.rhos, m.tauAt = ratioGrid(m.tolerance)
	m.stepCap = stepCapPer10s
	m.closed = make([][]float64, len(m.rhos))
	m.openLLR = make([][]float64, len(m.rhos))
	for k := range m.rhos {
		m.closed[k] = make([]float64, len(m.down))
		m.openLLR[k] = make([]float64, len(m.down))
	}
	return m
}

// stepCapPer10s bounds how far one 10 s bucket can move the HEALTHY test
// (and the upper bound): 2 nats, a likelihood ratio of e². An incident in
// one bucket can then take the test at most that far towards HEALTHY,
// however many errors it had, while an ordinary bucket at hundreds of
// errors a minute rarely reaches it. Capping a bucket's likelihood ratio
// from above keeps the test a supermartingale: min(LR, e²) ≤ LR.
const stepCapPer10s = 2.0

// ratioGrid is the ratios the upper bound is searched on, 5% apart from
// about 0.55× to 45×, with the tolerance exactly on it.
func ratioGrid(tol float64) ([]float64, int) {
	const below, above, step = 20, 70, 1.05
	rhos := make([]float64, 0, below+above+1)
	for k := -below; k <= above; k++ {
		rhos = append(rhos, tol*math.Pow(step, float64(k)))
	}
	return rhos, below
}

// SetHistory gives the monitor the baseline release's error counts per
// bucket before the canary (oldest first, buckets of width), from which it
// learns the usual rate and how clustered errors are. Call it before the
// first Observe; a width ≤ 0 keeps BucketWidth.
func (m *Monitor) SetHistory(width time.Duration, counts []int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if width > 0 {
		m.width = width
		m.stepCap = stepCapPer10s * float64(width) / float64(BucketWidth)
	}
	for _, c := range counts[max(0, len(counts)-historyBuckets):] {
		m.arr.push(float64(max(c, 0)))
	}
}

// Observe adds one bucket, or a part of an open one (see Monitor).
// Buckets with share 0 or 1 (or outside it) carry no information about the
// comparison and are skipped, as are buckets with negative counts.
func (m *Monitor) Observe(b Bucket) {
	w := b.Share
	if !(w > 0 && w < 1) || b.Candidate < 0 || b.Baseline < 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	late := false
	switch {
	case !m.open:
		m.focus(w)
		m.openBucket(b.Start)
		m.countBucket(w)
	case b.Start.After(m.curStart):
		m.closeBucket()
		m.arr.push(m.curRaw)
		// Buckets nobody fed had no errors: they are measured zeros.
		gap := int(b.Start.Sub(m.curStart)/m.width) - 1
		for range min(max(gap, 0), historyBuckets) {
			m.arr.push(0)
		}
		m.openBucket(b.Start)
		m.countBucket(w)
	case b.Start.Before(m.curStart):
		late = true // a source revised an older bucket
	}
	m.lastShare = w
	n := b.Candidate + b.Baseline
	if n == 0 {
		return
	}
	fn := float64(n)
	var full float64 // how many of the n events count in full
	if late {
		full = math.Min(fn, m.arr.cap())
	} else {
		full = math.Min(fn, math.Max(0, m.curCap-m.curRaw))
		m.curRaw += fn
	}
	phi := m.curPhi
	if late {
		phi = m.arr.phi
	}
	s := full / fn / phi
	m.downWeight += fn - full
	m.tempered = m.tempered || s < 1
	gi, found := slices.BinarySearchFunc(m.groups, w, func(g group, w float64) int { return cmp.Compare(g.w, w) })
	if !found {
		m.groups = slices.Insert(m.groups, gi, m.newGroup(w))
	}
	g := &m.groups[gi]
	ce, ne := s*float64(b.Candidate), s*fn
	g.cEff += ce
	g.nEff += ne
	g.cAll += float64(b.Candidate) / phi
	g.nAll += fn / phi
	g.c += b.Candidate
	g.n += n
	m.cand += b.Candidate
	m.base += b.Baseline
	if late {
		// A revised older bucket is a bucket of its own to the HEALTHY
		// test, capped at once.
		for k := range m.rhos {
			for j, c := range m.down {
				m.closed[k][j] += math.Min(ce*math.Log(c.factor)-ne*g.downLog[k][j], m.stepCap)
			}
		}
	} else {
		for k := range m.rhos {
			for j, c := range m.down {
				m.openLLR[k][j] += ce*math.Log(c.factor) - ne*g.downLog[k][j]
			}
		}
	}

	if !m.spiked && m.cand+m.base >= m.minEvents {
		if l := m.logUp(1); l >= m.logThreshold {
			at := b.At
			if at.IsZero() {
				at = b.Start.Add(m.width)
			}
			m.spiked, m.spikeAt, m.spikeLLR = true, at, l
			m.spikeLow = m.lowerBound()
		}
	}
}

// focus sets the SPIKE test's prior weights once, before any canary
// error is seen, from the baseline's learned rate and the share: a factor
// whose oracle test would need longer than focusHorizon on average keeps
// no weight, unless none is faster. Fixed before the data it judges, the
// prior leaves the test a martingale. Without a learned rate every factor
// keeps its weight.
func (m *Monitor) focus(w float64) {
	if m.focused {
		return
	}
	m.focused = true
	lambda := m.arr.lambda / m.arr.phi // independent events per bucket
	if lambda <= 0 {
		return
	}
	buckets := float64(focusHorizon) / float64(m.width)
	fast := func(r float64) bool {
		p := w * r / (w*r + 1 - w)
		kl := p*math.Log(p/w) + (1-p)*math.Log((1-p)/(1-w))
		perBucket := lambda * (1 - w + w*r)
		return kl*perBucket*buckets >= m.logThreshold
	}
	var keep []Alternative
	var sum float64
	for _, a := range m.alts {
		if fast(a.Factor) {
			keep = append(keep, a)
			sum += a.Weight
		} else {
			m.dropped = append(m.dropped, a.Factor)
		}
	}
	if len(keep) == 0 {
		best := slices.MaxFunc(m.alts, func(a, b Alternative) int { return cmp.Compare(a.Factor, b.Factor) })
		keep, sum = []Alternative{best}, best.Weight
		m.dropped = slices.DeleteFunc(m.dropped, func(f float64) bool { return f == best.Factor })
	}
	m.up = m.up[:0]
	for _, a := range keep {
		m.up = append(m.up, component{factor: a.Factor, logWeight: math.Log(a.Weight / sum)})
	}
}

func (m *Monitor) newGroup(w float64) group {
	g := group{w: w, downLog: make([][]float64, len(m.rhos))}
	for k, rho := range m.rhos {
		g.downLog[k] = make([]float64, len(m.down))
		for j, c := range m.down {
			g.downLog[k][j] = math.Log1p(w*(rho*c.factor-1)) - math.Log1p(w*(rho-1))
		}
	}
	return g
}

// closeBucket adds the open bucket's capped evidence to the HEALTHY sums.
func (m *Monitor) closeBucket() {
	for k := range m.rhos {
		for j := range m.down {
			m.closed[k][j] += math.Min(m.openLLR[k][j], m.stepCap)
			m.openLLR[k][j] = 0
		}
	}
}

// logDown is the HEALTHY mixture against ratio ρ_k, the open bucket
// included with its cap.
func (m *Monitor) logDown(k int) float64 {
	top := math.Inf(-1)
	var vals [8]float64
	ls := vals[:0]
	for j, c := range m.down {
		l := c.logWeight + m.closed[k][j] + math.Min(m.openLLR[k][j], m.stepCap)
		ls = append(ls, l)
		top = math.Max(top, l)
	}
	var s float64
	for _, l := range ls {
		s += math.Exp(l - top)
	}
	return top + math.Log(s)
}

func (m *Monitor) openBucket(start time.Time) {
	m.open, m.curStart, m.curRaw = true, start, 0
	m.curCap, m.curPhi = m.arr.cap(), m.arr.phi
}

func (m *Monitor) countBucket(w float64) {
	m.buckets++
	m.shareSum += w
	if m.buckets == 1 {
		m.minShare, m.maxShare = w, w
	} else {
		m.minShare, m.maxShare = math.Min(m.minShare, w), math.Max(m.maxShare, w)
	}
}

// llr is the log likelihood ratio of rate ratio alt against null over the
// weighted counts, capped per bucket or not.
func (m *Monitor) llr(alt, null float64, capped bool) float64 {
	la := math.Log(alt / null)
	var s float64
	for i := range m.groups {
		g := &m.groups[i]
		c, n := g.cAll, g.nAll
		if capped {
			c, n = g.cEff, g.nEff
		}
		if n == 0 {
			continue
		}
		s += c*la - n*(math.Log1p(g.w*(alt-1))-math.Log1p(g.w*(null-1)))
	}
	return s
}

// logMix is the log of the mixture of likelihood ratios of null·factor
// against null, by log-sum-exp.
func (m *Monitor) logMix(null float64, comps []component, capped bool) float64 {
	var vals [8]float64
	ls := vals[:0]
	top := math.Inf(-1)
	for _, c := range comps {
		l := c.logWeight + m.llr(null*c.factor, null, capped)
		ls = append(ls, l)
		top = math.Max(top, l)
	}
	return top + logSumExpFrom(ls, top)
}

func logSumExpFrom(ls []float64, top float64) float64 {
	if math.IsInf(top, -1) {
		return 0
	}
	var s float64
	for _, l := range ls {
		s += math.Exp(l - top)
	}
	return math.Log(s)
}

// Weights of the SPIKE test's two readings of the counts. Mixing two test
// martingales with fixed weights gives a test martingale, and where no
// bucket was capped the two are the same and so is the mixture. A burst
// from the candidate counts in full through the first; an incident on
// the baseline's side cannot sink the second below a few buckets' worth.
var (
	logAllCounts    = math.Log(0.8)
	logCappedCounts = math.Log(0.2)
)

// logUp is the SPIKE test's mixture against ratio null: the alternatives
// over all counts (each weighted for clustering) and over the counts
// capped per bucket.
func (m *Monitor) logUp(null float64) float64 {
	a := logAllCounts + m.logMix(null, m.up, false)
	b := logCappedCounts + m.logMix(null, m.up, true)
	top := math.Max(a, b)
	return top + logSumExpFrom([]float64{a, b}, top)
}

// Bounds of the ratios the confidence bounds are searched in.
const (
	boundLo = 1e-3
	boundHi = 1e4
)

// upperBound is the always-valid upper confidence bound on the rate ratio:
// the smallest ratio on the grid from which on every ratio is rejected by
// the test against smaller ratios. Unbounded when the largest is not.
func (m *Monitor) upperBound() float64 {
	k := len(m.rhos)
	for k > 0 && m.logDown(k-1) >= m.logThreshold {
		k--
	}
	switch {
	case k == len(m.rhos):
		return Unbounded
	case k > m.tauAt && m.logDown(m.tauAt) >= m.logThreshold:
		// The tolerance is rejected though a larger ratio on the grid is
		// not (the mixture is not quite monotone there): HEALTHY's own
		// test decides, and the bound says no more than it.
		return m.tolerance
	}
	return m.rhos[k]
}

// lowerBound is the always-valid lower confidence bound: the largest ratio
// the SPIKE test (centred there) still rejects, 0 when none is.
func (m *Monitor) lowerBound() float64 {
	rejected := func(lr float64) bool { return m.logUp(math.Exp(lr)) >= m.logThreshold }
	lo, hi := math.Log(boundLo), math.Log(boundHi)
	if !rejected(lo) {
		return 0
	}
	if rejected(hi) {
		return boundHi
	}
	for range 50 {
		mid := (lo + hi) / 2
		if rejected(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return math.Exp(lo)
}

// healthy reports whether the test of "ratio ≥ tolerance" has crossed.
func (m *Monitor) healthy() bool {
	return m.cand+m.base >= m.minEvents && m.logDown(m.tauAt) >= m.logThreshold
}

// Kind is the verdict's kind as of now, without its evidence: cheap
// enough to ask after every bucket.
func (m *Monitor) Kind() core.VerdictKind {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.spiked:
		return core.VerdictSpike
	case m.healthy():
		return core.VerdictHealthy
	}
	return core.VerdictInconclusive
}

// SetNewIssues records the fingerprints first seen in the candidate (see
// NewIssues) so the verdict's evidence lists them.
func (m *Monitor) SetNewIssues(issues []core.ErrorIssue) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.newIssues = append([]core.ErrorIssue(nil), issues...)
}

// SpikeAt reports whether SPIKE has been called and when the counts that
// crossed the threshold were seen.
func (m *Monitor) SpikeAt() (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.spikeAt, m.spiked
}

// EvidenceRatio returns the SPIKE test's mixture likelihood ratio now (1
// before any error arrived), capped at the largest float64.
func (m *Monitor) EvidenceRatio() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return expCapped(m.logUp(1))
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
		EvidenceRatio:  expCapped(m.logUp(1)),
		Threshold:      1 / m.alpha,
		Elapsed:        max(now.Sub(m.start), 0),
		NewIssues:      append([]core.ErrorIssue(nil), m.newIssues...),
		PValue:         1,
		RateRatioHigh:  m.upperBound(),
		RateRatioLow:   m.lowerBound(),
		Tolerance:      m.tolerance,
		Dispersion:     m.arr.phi,
	}
	if total > 0 && share > 0 {
		ev.PValue = BinomialUpperTail(m.cand, total, share)
		ev.RateRatio = m.rateRatioMLE()
	}
	conf := fmtPercent(1 - m.alpha)

	var notes []string
	kind := core.VerdictInconclusive
	switch {
	case m.spiked:
		kind = core.VerdictSpike
		ev.CalledAfter = max(m.spikeAt.Sub(m.start), 0)
		notes = append(notes, fmt.Sprintf(
			"spike called %s after the candidate began taking traffic, when the evidence ratio reached %s (threshold %s): at least %s× the baseline's error rate with %s confidence then; it stays spike for this canary even if errors settle",
			ev.CalledAfter.Round(time.Second), fmtNum(expCapped(m.spikeLLR)), fmtNum(ev.Threshold), fmtRatio(m.spikeLow), conf))
	case m.healthy():
		kind = core.VerdictHealthy
		notes = append(notes, fmt.Sprintf("no worse than %s× the baseline's error rate with %s confidence (always-valid upper bound %s×)",
			fmtRatio(m.tolerance), conf, fmtRatio(ev.RateRatioHigh)))
	default:
		ev.NeedsMore = m.needsMore()
		notes = append(notes, m.inconclusiveNote(ev, conf))
	}
	if len(m.dropped) > 0 {
		var fs []string
		for _, f := range m.dropped {
			fs = append(fs, fmtRatio(f)+"×")
		}
		notes = append(notes, fmt.Sprintf("at this error rate and share a regression of %s could not be told apart within %s, so the spike test watches for larger ones",
			strings.Join(fs, ", "), roundNeeds(focusHorizon)))
	}
	if m.arr.phi > 1 {
		notes = append(notes, fmt.Sprintf("errors arrive in clusters (dispersion %.1f learned from the baseline): each counts as 1/%.1f of an independent error", m.arr.phi, m.arr.phi))
	}
	if m.downWeight > 0 {
		notes = append(notes, fmt.Sprintf("%.0f errors beyond a bucket's usual load (an incident or burst) were left out of the tests", m.downWeight))
	}
	if m.buckets > 0 && m.maxShare-m.minShare > 1e-9 {
		notes = append(notes, fmt.Sprintf(
			"share varied %s–%s: each bucket is judged at the share in force; the p-value uses the error-weighted average share",
			fmtPercent(m.minShare), fmtPercent(m.maxShare)))
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

// inconclusiveNote says what evidence is still missing.
func (m *Monitor) inconclusiveNote(ev core.Evidence, conf string) string {
	total := m.cand + m.base
	bound := "cannot be bounded yet"
	if ev.RateRatioHigh < Unbounded {
		bound = fmt.Sprintf("is at most %s× with %s confidence", fmtRatio(ev.RateRatioHigh), conf)
	}
	head := fmt.Sprintf("not enough evidence yet: the candidate's error rate %s; HEALTHY needs it below %s×", bound, fmtRatio(m.tolerance))
	switch {
	case total < m.minEvents:
		return fmt.Sprintf("%s; %d of the %d errors needed for any verdict so far", head, total, m.minEvents)
	case ev.NeedsMore > 0:
		return fmt.Sprintf("%s; needs ~%s more at this error rate if the candidate keeps its current ratio", head, roundNeeds(ev.NeedsMore))
	case ev.RateRatio >= m.tolerance:
		return fmt.Sprintf("%s; at the current ratio (%s×) it would not get there", head, fmtRatio(ev.RateRatio))
	}
	return head + "; no errors to measure with so far"
}

// needsMore estimates how much longer the canary must run for HEALTHY if
// errors keep arriving at the learned rate and the candidate's ratio stays
// where it is (taken as 1 when it looks better, which is the cautious
// reading). Zero when it cannot get there.
func (m *Monitor) needsMore() time.Duration {
	w := m.lastShare
	rate := math.Min(m.arr.lambda, m.arr.cap()) / m.arr.phi // weighted events per bucket
	if !(w > 0 && w < 1) || rate <= 0 {
		return 0
	}
	rho := 1.0
	if m.cand+m.base > 0 && m.rateRatioMLE() > 1 {
		rho = m.rateRatioMLE()
	}
	if rho >= m.tolerance {
		return 0
	}
	p := w * rho / (w*rho + 1 - w)
	type comp struct{ now, drift float64 }
	var comps []comp
	for j, c := range m.down {
		alt := m.tolerance * c.factor
		d := rate * (p*math.Log(c.factor) - (math.Log1p(w*(alt-1)) - math.Log1p(w*(m.tolerance-1))))
		now := c.logWeight + m.closed[m.tauAt][j] + math.Min(m.openLLR[m.tauAt][j], m.stepCap)
		comps = append(comps, comp{now: now, drift: math.Min(d, m.stepCap)})
	}
	at := func(buckets float64) float64 {
		top := math.Inf(-1)
		for _, c := range comps {
			top = math.Max(top, c.now+buckets*c.drift)
		}
		var s float64
		for _, c := range comps {
			s += math.Exp(c.now + buckets*c.drift - top)
		}
		return top + math.Log(s)
	}
	const far = 1e7 // buckets: years
	if at(far) < m.logThreshold {
		return 0
	}
	lo, hi := 0.0, far
	for range 60 {
		mid := (lo + hi) / 2
		if at(mid) >= m.logThreshold {
			hi = mid
		} else {
			lo = mid
		}
	}
	return time.Duration(hi * float64(m.width))
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
			wn += m.groups[i].w * float64(m.groups[i].n)
		}
		return wn / float64(m.cand+m.base)
	case m.buckets > 0:
		return m.shareSum / float64(m.buckets)
	}
	return 0
}

// rateRatioMLE maximises the likelihood of the weighted counts over the
// ratio. With share groups g, logit p_g = logit w_g + log ρ, so the score
// equation is Σ n_g p_g(ρ) = candidate count, monotone in log ρ: solved by
// bisection. For one share it is (c/b)·(1-w)/w.
//
// It is the ratio shown beside the counts, so it reads the counts in full
// when the capped ones hold no baseline error at all: baseline errors
// that arrived once a candidate burst had filled its bucket's cap weigh
// nothing in the test, yet "8 vs 2 errors · ∞×" would say what was never
// seen.
func (m *Monitor) rateRatioMLE() float64 {
	count := func(g *group) (c, n float64) { return g.cEff, g.nEff }
	var c, n float64
	for i := range m.groups {
		gc, gn := count(&m.groups[i])
		c, n = c+gc, n+gn
	}
	if c > 0 && c >= n && m.base > 0 {
		count = func(g *group) (c, n float64) { return g.cAll, g.nAll }
		c, n = 0, 0
		for i := range m.groups {
			gc, gn := count(&m.groups[i])
			c, n = c+gc, n+gn
		}
	}
	switch {
	case n == 0 || c == 0:
		return 0
	case c >= n:
		return Unbounded
	}
	if len(m.groups) == 1 {
		w := m.groups[0].w
		return c / (n - c) * (1 - w) / w
	}
	expected := func(theta float64) float64 {
		var s float64
		for i := range m.groups {
			g := &m.groups[i]
			_, gn := count(g)
			s += gn / (1 + math.Exp(-(math.Log(g.w/(1-g.w)) + theta)))
		}
		return s
	}
	lo, hi := -60.0, 60.0
	for range 100 {
		mid := (lo + hi) / 2
		if expected(mid) < c {
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

// fmtRatio prints a rate ratio: "1.32", "∞" when unbounded.
func fmtRatio(x float64) string {
	switch {
	case x >= boundHi:
		return "∞"
	case x >= 10:
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.3g", x)
}

// fmtPercent prints a fraction as a percentage without needless digits.
func fmtPercent(x float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", 100*x), "0"), ".") + "%"
}

// roundNeeds rounds an estimate of time still needed to what it is worth.
func roundNeeds(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "1m"
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(math.Ceil(d.Minutes())))
	case d < 48*time.Hour:
		return fmt.Sprintf("%.0fh", math.Ceil(d.Hours()))
	}
	return "days"
}
