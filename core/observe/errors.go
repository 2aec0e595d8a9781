package observe

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/spike"
)

const (
	// settleGap is how long a feed waits for the rest of a push when only
	// one of the canary's two releases has reported. A source pushes all
	// releases back to back, and feeding one release's new errors without
	// the other's from the same moment would reveal errors selected by
	// their label, which the sequential test does not allow. A release
	// with no errors in the source's whole window is left out of its
	// pushes, so the wait is needed to learn that its count is zero.
	settleGap = 50 * time.Millisecond
	// newIssuesTop is how many new fingerprints a verdict lists.
	newIssuesTop = 5
	// minHistory is the least error history kept per release, so a full
	// rollout can be compared with the time before a long canary.
	minHistory = 2 * time.Hour
)

// errState is one environment's error counts and verdicts. The watch's
// callback, the reactor (deployments) and the judge goroutine (timers)
// share it under mu.
type errState struct {
	ob       *Observer
	ref      core.Ref
	policy   spike.Policy
	window   time.Duration // the comparison after a full rollout (spike.window)
	settleCh chan struct{}

	mu          sync.Mutex
	width       time.Duration // bucket width the source uses, once seen
	reportedAt  time.Time     // when the source last pushed, by the engine's clock
	covered     time.Time     // earliest bucket start the source has reported
	newest      time.Time     // latest bucket start the source has reported
	counts      map[string]map[time.Time]int64
	issues      map[string][]core.ErrorIssue
	unavailable map[string]string // per release; "" for the whole environment
	touched     map[time.Time]bool
	updated     map[string]bool // releases reported since the last feed
	can         *canary
	post        *postRollout
}

// canary is the running evidence of one deployment's traffic split.
type canary struct {
	cand, base string
	started    time.Time // the deployment's start: which deployment this is
	exposed    time.Time // when the candidate began taking traffic
	first      time.Time // the first bucket whose errors are evidence
	mon        *spike.Monitor
	share      float64
	live       bool // traffic is split now, so errors carry information
	fed        map[time.Time]fedCounts
	known      map[string]bool // fingerprints seen in other releases
	tag        verdictTag
}

type fedCounts struct{ cand, base int64 }

// postRollout compares a release after its full rollout with the one it
// replaced.
type postRollout struct {
	cand, base        string
	started, finished time.Time
	after             int // closed buckets after the switch compared so far
	done              bool
	tag               verdictTag
}

// verdictTag remembers the kind last published, so a change is final.
type verdictTag struct {
	published bool
	kind      core.VerdictKind
}

func newErrState(ob *Observer, ref core.Ref) *errState {
	return &errState{
		ob: ob, ref: ref, policy: ob.o.Spike[ref], window: ob.postRollout(ref), settleCh: make(chan struct{}, 1),
		counts: map[string]map[time.Time]int64{}, issues: map[string][]core.ErrorIssue{},
		unavailable: map[string]string{}, touched: map[time.Time]bool{}, updated: map[string]bool{},
	}
}

func (ob *Observer) watchErrors(ctx context.Context, s *errState, src core.ErrorSource) {
	ob.retry(ctx, s.ref, "watch errors of "+s.ref.String(), func(ctx context.Context) error {
		return src.WatchCounts(ctx, s.ref, s.take)
	}, s.failed)
}

// failed marks the counts unavailable until the watch is back.
func (s *errState) failed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unavailable[""] = "counts unavailable: " + err.Error()
	s.publishLocked(s.ob.eng.Now())
}

// take takes one error window from the source.
func (s *errState) take(w core.ErrorWindow) {
	if w.Heartbeat() {
		s.mu.Lock()
		s.reportedAt = s.ob.eng.Now()
		s.mu.Unlock()
		return
	}
	w.Ref = s.ref
	w.Buckets = slices.Clone(w.Buckets)
	w.Issues = slices.Clone(w.Issues)
	s.ob.eng.Publish(core.Event{Kind: core.EvErrors, Ref: s.ref, Key: "errors/" + s.ref.String() + "/" + w.Release, Errors: &w})

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.ob.eng.Now()
	s.reportedAt = now
	if w.Unavailable != "" {
		s.unavailable[w.Release] = w.Unavailable
		s.publishLocked(now)
		return
	}
	delete(s.unavailable, w.Release)
	delete(s.unavailable, "")
	m := s.counts[w.Release]
	if m == nil {
		m = map[time.Time]int64{}
		s.counts[w.Release] = m
	}
	for i, b := range w.Buckets {
		if i > 0 {
			if d := b.Start.Sub(w.Buckets[i-1].Start); d > 0 {
				s.width = d
			}
		}
		if s.covered.IsZero() || b.Start.Before(s.covered) {
			s.covered = b.Start
		}
		if b.Start.After(s.newest) {
			s.newest = b.Start
		}
		if old, ok := m[b.Start]; !ok || old != b.Count {
			m[b.Start] = b.Count
			s.touched[b.Start] = true
		}
	}
	if len(w.Issues) > 0 {
		s.issues[w.Release] = w.Issues
	}
	s.updated[w.Release] = true
	s.prune()

	if c := s.can; c != nil {
		if w.Release != c.cand {
			for _, is := range w.Issues {
				c.known[is.Fingerprint] = true
			}
		}
		switch {
		case !c.live:
			clear(s.touched)
		case s.updated[c.cand] && s.updated[c.base]:
			s.feedLocked(now)
		case s.updated[c.cand] || s.updated[c.base]:
			select {
			case s.settleCh <- struct{}{}:
			default:
			}
		}
	}
	if p := s.post; p != nil && !p.done && s.closedAfter(p, now) != p.after {
		s.compareLocked(now)
	}
}

// bucketWidth is the source's bucket width, the ingest's until seen.
func (s *errState) bucketWidth() time.Duration {
	if s.width > 0 {
		return s.width
	}
	return spike.BucketWidth
}

// prune forgets buckets too old to matter.
func (s *errState) prune() {
	keep := max(minHistory, 4*s.window)
	cut := s.newest.Add(-keep)
	if !s.covered.Before(cut) {
		return
	}
	s.covered = cut
	for _, m := range s.counts {
		for t := range m {
			if t.Before(cut) {
				delete(m, t)
			}
		}
	}
	if c := s.can; c != nil {
		for t := range c.fed {
			if t.Before(cut) {
				delete(c.fed, t)
			}
		}
	}
	for t := range s.touched {
		if t.Before(cut) {
			delete(s.touched, t)
		}
	}
}

// historyBuckets is how much of the baseline's history before exposure a
// canary learns its error rate and clustering from: an hour at 10 s.
const historyBuckets = 360

// liveWithin is how recently a source must have pushed to count as live:
// the ingest pushes within a fraction of a second of an error, and a
// window or a heartbeat at least every bucket; a poller (the Sentry API,
// once a minute) does not.
const liveWithin = 15 * time.Second

// deployment follows ref's deployment: a traffic split runs a canary
// verdict, a full rollout a comparison with the release it replaced. The
// candidate's share is the one the target reports for it when it reports
// one (a fleet of hosts gives whole hosts: 10% asked of 4 hosts is 25%),
// else the weight the rollout asked for.
func (s *errState) deployment(d core.Deployment, t core.TargetStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.ob.eng.Now()
	started := d.StartedAt.Round(0).Truncate(time.Millisecond) // a restored deployment's time lost its sub-millisecond part
	replaces := d.From != "" && d.From != d.Version
	split := replaces && d.Weight > 0 && d.Weight < 100 && !d.State.Terminal() && d.State != core.DeployPending
	same := s.can != nil && s.can.cand == d.Version && s.can.base == d.From && s.can.started.Equal(started)
	switch {
	case split:
		// Traffic stays split while a rollout pauses or waits for
		// judgment, so evidence keeps accruing then too.
		if !same {
			s.startCanaryLocked(d, started, now)
		} else if share := float64(d.Weight) / 100; s.can.live && share != s.can.share {
			// What arrived before the step was at the old share.
			s.feedLocked(now)
		}
		s.post = nil
		share := d.Weight
		if t.Candidate == d.Version && t.Weight > 0 && t.Weight < 100 {
			share = t.Weight
		}
		s.can.share, s.can.live = float64(share)/100, true
		s.feedLocked(now)
		return
	case same && !d.State.Terminal():
		if s.can.live {
			s.feedLocked(now) // what arrived before the split ended
		}
		s.can.live = false // a weight step through 0 or 100: no split to judge
		return
	}
	s.can = nil
	width := s.bucketWidth()
	if replaces && d.State == core.DeployHealthy && d.Weight == 100 && !d.FinishedAt.IsZero() &&
		now.Before(d.FinishedAt.Add(s.window+width)) {
		if p := s.post; p == nil || p.cand != d.Version || p.base != d.From || !p.finished.Equal(d.FinishedAt) {
			s.post = &postRollout{cand: d.Version, base: d.From, started: d.StartedAt, finished: d.FinishedAt}
			s.compareLocked(now)
		}
		return
	}
	s.post = nil
}

// startCanaryLocked begins the evidence of d's traffic split. Evidence
// starts when the candidate began taking traffic (d.ExposedAt; a split
// recorded without it starts now): deploy and health-check time never
// count. The bucket holding that instant is clipped to it — for a live
// source the counts it already showed for that bucket came before, and
// only what arrives after counts; for a source that is not live the
// bucket is left out, since its counts cannot be split. The baseline's
// counts before exposure are the history the monitor learns the usual
// error rate and clustering from.
func (s *errState) startCanaryLocked(d core.Deployment, started, now time.Time) {
	exposed := d.ExposedAt.Round(0).Truncate(time.Millisecond)
	if exposed.IsZero() || exposed.After(now) {
		exposed = now
	}
	width := s.bucketWidth()
	b0 := exposed.Truncate(width)
	c := &canary{
		cand: d.Version, base: d.From, started: started, exposed: exposed, first: b0,
		mon: spike.NewMonitor(s.ref, d.Version, d.From, s.policy, exposed),
		fed: map[time.Time]fedCounts{}, known: map[string]bool{},
	}
	for rel, issues := range s.issues {
		if rel != d.Version {
			for _, is := range issues {
				c.known[is.Fingerprint] = true
			}
		}
	}
	var hist []int64
	for i := historyBuckets; i >= 1; i-- {
		t := b0.Add(-time.Duration(i) * width)
		if s.covered.IsZero() || t.Before(s.covered) {
			continue // not reported: unknown, not zero
		}
		hist = append(hist, s.counts[d.From][t])
	}
	c.mon.SetHistory(width, hist)
	live := !s.reportedAt.IsZero() && now.Sub(s.reportedAt) < liveWithin
	switch {
	case exposed.Equal(b0):
		// Exposure began with the bucket: all of it is evidence.
	case live && now.Sub(exposed) < width:
		c.fed[b0] = fedCounts{cand: s.counts[d.Version][b0], base: s.counts[d.From][b0]}
	default:
		c.first = b0.Add(width)
	}
	s.can = c
	// The first feed takes everything since exposure.
	for _, rel := range []string{d.Version, d.From} {
		for t := range s.counts[rel] {
			if !t.Before(c.first) {
				s.touched[t] = true
			}
		}
	}
}

// feedLocked gives the canary's monitor the errors that arrived since the
// last feed, each bucket's candidate and baseline counts together, at the
// share in force, then publishes the verdict.
func (s *errState) feedLocked(now time.Time) {
	c := s.can
	if c == nil || !c.live {
		return
	}
	starts := make([]time.Time, 0, len(s.touched))
	for t := range s.touched {
		starts = append(starts, t)
	}
	slices.SortFunc(starts, time.Time.Compare)
	for _, t := range starts {
		if t.Before(c.first) {
			continue // before exposure
		}
		f := c.fed[t]
		dc := max(s.counts[c.cand][t]-f.cand, 0)
		db := max(s.counts[c.base][t]-f.base, 0)
		if dc+db == 0 {
			continue
		}
		c.mon.Observe(spike.Bucket{Start: t, Share: c.share, Candidate: dc, Baseline: db, At: now})
		c.fed[t] = fedCounts{cand: f.cand + dc, base: f.base + db}
	}
	clear(s.touched)
	clear(s.updated)
	if issues := s.issues[c.cand]; len(issues) > 0 {
		var fresh []core.ErrorIssue
		for _, is := range issues {
			if is.FirstRelease == "" || is.FirstRelease == c.cand {
				fresh = append(fresh, is)
			}
		}
		c.mon.SetNewIssues(spike.NewIssues(fresh, c.known, newIssuesTop))
	}
	s.publishLocked(now)
}

// settled feeds what a push left unpaired once the push is over.
func (s *errState) settled() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.can; c != nil && c.live && (s.updated[c.cand] || s.updated[c.base]) {
		s.feedLocked(s.ob.eng.Now())
	}
}

// unavailableFor says why counts of the releases are unavailable, if so.
func (s *errState) unavailableFor(releases ...string) string {
	if why := s.unavailable[""]; why != "" {
		return why
	}
	for _, r := range releases {
		if why := s.unavailable[r]; why != "" {
			return why
		}
	}
	return ""
}

// publishLocked publishes the current verdict, if any is being judged.
func (s *errState) publishLocked(now time.Time) {
	switch {
	case s.can != nil && s.can.live:
		c := s.can
		v := c.mon.Verdict(now)
		if v.Evidence.Share == 0 {
			v.Evidence.Share = c.share // no error yet: say what the split is
		}
		s.withUnavailable(&v, c.cand, c.base)
		s.publishVerdict(v, &c.tag)
	case s.post != nil && !s.post.done:
		s.compareLocked(now)
	}
}

// withUnavailable turns a verdict inconclusive while counts are missing:
// a missing count is not a zero. A SPIKE already called stands.
func (s *errState) withUnavailable(v *core.SpikeVerdict, releases ...string) {
	why := s.unavailableFor(releases...)
	if why == "" || v.Kind == core.VerdictSpike {
		return
	}
	if !strings.HasPrefix(why, "counts unavailable") {
		why = "counts unavailable: " + why
	}
	v.Kind = core.VerdictInconclusive
	v.Evidence.Note = why + "; no verdict until counts return"
}

func (s *errState) publishVerdict(v core.SpikeVerdict, tag *verdictTag) {
	final := !tag.published || tag.kind != v.Kind
	tag.published, tag.kind = true, v.Kind
	s.ob.eng.Publish(core.Event{Kind: core.EvVerdict, Ref: s.ref, Final: final, Key: "verdict/" + s.ref.String(), Verdict: &v})
}

// closedAfter counts the closed buckets after p's switch the source has
// reported, up to the comparison window.
func (s *errState) closedAfter(p *postRollout, now time.Time) int {
	width := s.bucketWidth()
	limit := max(int(s.window/width), 1)
	first := p.finished.Truncate(width)
	if first.Before(p.finished) {
		first = first.Add(width)
	}
	n := 0
	for t := first; n < limit && !t.Add(width).After(now) && !t.After(s.newest); t = t.Add(width) {
		n++
	}
	return n
}

// compareLocked compares the new release's errors in the closed buckets
// after the switch with the previous release's in as many buckets before
// the rollout started (before any canary, when it had all the traffic).
func (s *errState) compareLocked(now time.Time) {
	p := s.post
	width := s.bucketWidth()
	k := max(int(s.window/width), 1)
	end := p.started.Truncate(width) // the bucket holding the start is mixed
	var before []int64
	for i := k; i >= 1; i-- {
		t := end.Add(-time.Duration(i) * width)
		if s.covered.IsZero() || t.Before(s.covered) {
			continue // not reported: unknown, not zero
		}
		before = append(before, s.counts[p.base][t])
	}
	n := s.closedAfter(p, now)
	first := p.finished.Truncate(width)
	if first.Before(p.finished) {
		first = first.Add(width)
	}
	after := make([]int64, n)
	for i := range after {
		after[i] = s.counts[p.cand][first.Add(time.Duration(i)*width)]
	}
	p.after = n
	v := spike.CompareWindows(s.ref, p.cand, p.base, before, after, s.policy)
	v.At = now
	note := fmt.Sprintf("after the full rollout: %s's errors in the %s after the switch against %s's in as long before the rollout began; this assumes equal traffic on both sides",
		p.cand, time.Duration(min(len(before), n))*width, p.base)
	if len(before) == 0 {
		note = fmt.Sprintf("after the full rollout: no error counts of %s from before the rollout were seen, so there is nothing to compare with", p.base)
	}
	v.Evidence.Note = note + "; " + v.Evidence.Note
	s.withUnavailable(&v, p.cand, p.base)
	s.publishVerdict(v, &p.tag)
	if !now.Before(p.finished.Add(s.window + width)) {
		p.done = true // the window is over; its last verdict stands
	}
}

// judge settles unpaired pushes and re-publishes the verdict every
// Rejudge, so its elapsed time and a post-rollout window move on while no
// error arrives.
func (s *errState) judge(ctx context.Context) {
	tick := time.NewTicker(s.ob.o.Rejudge)
	defer tick.Stop()
	settle := time.NewTimer(settleGap)
	settle.Stop()
	armed := false
	for {
		select {
		case <-ctx.Done():
			settle.Stop()
			return
		case <-s.settleCh:
			if !armed {
				settle.Reset(settleGap)
				armed = true
			}
		case <-settle.C:
			armed = false
			s.settled()
		case <-tick.C:
			s.mu.Lock()
			s.publishLocked(s.ob.eng.Now())
			s.mu.Unlock()
		}
	}
}
