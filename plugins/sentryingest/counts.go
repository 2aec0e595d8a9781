package sentryingest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// BucketSize is the width of one count bucket.
const BucketSize = 10 * time.Second

// CountStore persists count buckets so a restart keeps the baseline.
// core.Store satisfies it.
//
// PutErrorCounts is called with increments: the events counted in each
// bucket key (project, ref, release, level, fingerprint, bucket) since the
// last successful write. The store adds them to what it has for that key,
// as core.Store implementations do.
type CountStore interface {
	PutErrorCounts(ctx context.Context, counts []core.ErrorCount) error
	ErrorCounts(ctx context.Context, ref core.Ref, since time.Time) ([]core.ErrorCount, error)
}

// series is everything a count is kept by, apart from ref and bucket.
type series struct {
	project, release, level, fingerprint string
}

type cell struct {
	count   int64
	flushed int64 // how much of count the store already has
	dirty   bool
}

type issueMeta struct {
	title        string
	firstSeen    time.Time
	firstRelease string
	lastSeen     time.Time
}

// refCounts holds one environment's buckets, indexed by bucket start so a
// window reads only the buckets it covers.
type refCounts struct {
	buckets map[int64]map[series]*cell // bucket start, unix seconds
	issues  map[string]*issueMeta      // by fingerprint
	// names holds one copy of each release, level, project and
	// fingerprint string, so the cells of one issue share it instead of
	// keeping a copy per bucket (and never pin a request's buffer).
	names   map[string]string
	loaded  bool
	loading chan struct{} // closed when the load finished
}

type dirtyKey struct {
	ref    core.Ref
	bucket int64
	s      series
}

// counter is the in-memory count table: 10 s buckets kept for retention,
// flushed to the store when dirty.
type counter struct {
	mu        sync.Mutex
	refs      map[core.Ref]*refCounts
	dirty     []dirtyKey
	cells     int
	maxCells  int
	retention time.Duration
}

func newCounter(retention time.Duration, maxCells int) *counter {
	return &counter{refs: map[core.Ref]*refCounts{}, retention: retention, maxCells: maxCells}
}

func bucketOf(t time.Time) int64 {
	s := t.Unix()
	w := int64(BucketSize / time.Second)
	return s - ((s%w)+w)%w
}

// refLocked returns ref's table, creating it. c.mu must be held.
func (c *counter) refLocked(ref core.Ref) *refCounts {
	rc := c.refs[ref]
	if rc == nil {
		rc = &refCounts{buckets: map[int64]map[series]*cell{}, issues: map[string]*issueMeta{}, names: map[string]string{}}
		c.refs[ref] = rc
	}
	return rc
}

// maxNames bounds the intern table of one environment; past it strings
// are kept as they come (the cell cap still bounds memory).
const maxNames = 100_000

func (rc *refCounts) intern(s string) string {
	if v, ok := rc.names[s]; ok {
		return v
	}
	if len(rc.names) >= maxNames {
		return strings.Clone(s)
	}
	s = strings.Clone(s)
	rc.names[s] = s
	return s
}

// key is the series of an event, its strings interned.
func (rc *refCounts) key(project, release, level, fingerprint string) series {
	return series{project: rc.intern(project), release: rc.intern(release), level: rc.intern(level), fingerprint: rc.intern(fingerprint)}
}

// overflowFingerprint replaces fingerprints once the table is full, so a
// client inventing a fingerprint per event cannot grow memory without
// bound; its events are still counted.
const overflowFingerprint = "(too many distinct issues)"

// add counts one event at time now.
func (c *counter) add(project string, ref core.Ref, ev Event, now time.Time) {
	b := bucketOf(now)
	c.mu.Lock()
	defer c.mu.Unlock()
	rc := c.refLocked(ref)
	row := rc.buckets[b]
	if row == nil {
		row = map[series]*cell{}
		rc.buckets[b] = row
	}
	s := series{project: project, release: ev.Release, level: ev.Level, fingerprint: ev.Fingerprint}
	cl := row[s]
	if cl == nil {
		s = rc.key(project, ev.Release, ev.Level, ev.Fingerprint) // this series is kept: intern it
	}
	if cl == nil && c.maxCells > 0 && c.cells >= c.maxCells {
		s.fingerprint = overflowFingerprint
		ev.Title = overflowFingerprint
		cl = row[s]
	}
	if cl == nil {
		cl = &cell{}
		row[s] = cl
		c.cells++
	}
	cl.count++
	if !cl.dirty {
		cl.dirty = true
		c.dirty = append(c.dirty, dirtyKey{ref: ref, bucket: b, s: s})
	}
	im := rc.issues[s.fingerprint]
	if im == nil {
		im = &issueMeta{title: ev.Title, firstSeen: time.Unix(b, 0).UTC(), firstRelease: ev.Release}
		rc.issues[s.fingerprint] = im
	}
	if ev.Title != "" {
		im.title = ev.Title
	}
	im.lastSeen = now
}

// load merges persisted counts into ref's table once; concurrent callers
// wait for the first. Loaded counts are not dirty: the store has them.
func (c *counter) load(ctx context.Context, store CountStore, ref core.Ref, now time.Time) error {
	c.mu.Lock()
	rc := c.refLocked(ref)
	if rc.loaded {
		c.mu.Unlock()
		return nil
	}
	if rc.loading != nil {
		ch := rc.loading
		c.mu.Unlock()
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ch := make(chan struct{})
	rc.loading = ch
	c.mu.Unlock()

	var rows []core.ErrorCount
	var err error
	if store != nil {
		rows, err = store.ErrorCounts(ctx, ref, now.Add(-c.retention))
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	// A failed load is not retried: merging later would double-count
	// buckets this process has already flushed.
	rc.loaded = true
	rc.loading = nil
	close(ch)
	if err != nil {
		return fmt.Errorf("loading error counts of %s: %w", ref, err)
	}
	sort.Slice(rows, func(i, j int) bool {
		if !rows[i].Bucket.Equal(rows[j].Bucket) {
			return rows[i].Bucket.Before(rows[j].Bucket)
		}
		return rows[i].Release < rows[j].Release
	})
	for _, r := range rows {
		b := bucketOf(r.Bucket)
		row := rc.buckets[b]
		if row == nil {
			row = map[series]*cell{}
			rc.buckets[b] = row
		}
		s := rc.key(r.Project, r.Release, r.Level, r.Fingerprint)
		cl := row[s]
		if cl == nil {
			cl = &cell{}
			row[s] = cl
			c.cells++
		}
		cl.count += r.Count
		cl.flushed += r.Count
		start := time.Unix(b, 0).UTC()
		im := rc.issues[s.fingerprint]
		if im == nil {
			im = &issueMeta{firstSeen: start, firstRelease: r.Release}
			rc.issues[s.fingerprint] = im
		} else if start.Before(im.firstSeen) {
			im.firstSeen, im.firstRelease = start, r.Release
		}
		if im.title == "" {
			im.title = r.Title
		}
		if end := start.Add(BucketSize); end.After(im.lastSeen) {
			im.lastSeen = end
		}
	}
	return nil
}

// takeDirty returns, for every bucket changed since the last call, the
// events the store does not have yet, and marks them written.
func (c *counter) takeDirty() []core.ErrorCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]core.ErrorCount, 0, len(c.dirty))
	for _, k := range c.dirty {
		rc := c.refs[k.ref]
		if rc == nil {
			continue
		}
		cl := rc.buckets[k.bucket][k.s]
		if cl == nil || !cl.dirty {
			continue // pruned meanwhile
		}
		cl.dirty = false
		delta := cl.count - cl.flushed
		if delta == 0 {
			continue
		}
		cl.flushed = cl.count
		title := ""
		if im := rc.issues[k.s.fingerprint]; im != nil {
			title = im.title
		}
		out = append(out, core.ErrorCount{
			Project: k.s.project, Ref: k.ref, Release: k.s.release, Level: k.s.level,
			Fingerprint: k.s.fingerprint, Title: title,
			Bucket: time.Unix(k.bucket, 0).UTC(), Count: delta,
		})
	}
	c.dirty = c.dirty[:0]
	return out
}

// markDirty puts back increments whose write failed, so the next flush
// retries them.
func (c *counter) markDirty(rows []core.ErrorCount) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range rows {
		rc := c.refs[r.Ref]
		if rc == nil {
			continue
		}
		b := bucketOf(r.Bucket)
		s := series{project: r.Project, release: r.Release, level: r.Level, fingerprint: r.Fingerprint}
		cl := rc.buckets[b][s]
		if cl == nil {
			continue
		}
		cl.flushed -= r.Count
		if !cl.dirty {
			cl.dirty = true
			c.dirty = append(c.dirty, dirtyKey{ref: r.Ref, bucket: b, s: s})
		}
	}
}

// prune drops buckets and issues older than the retention.
func (c *counter) prune(now time.Time) {
	cut := bucketOf(now.Add(-c.retention))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rc := range c.refs {
		for b, row := range rc.buckets {
			if b < cut {
				c.cells -= len(row)
				delete(rc.buckets, b)
			}
		}
		for fp, im := range rc.issues {
			if im.lastSeen.Before(time.Unix(cut, 0)) {
				delete(rc.issues, fp)
			}
		}
	}
}

// windows builds one ErrorWindow per release with errors in ref within
// [now-span, now]: dense 10 s buckets (zeros included, so a quiet bucket
// is a measured zero) and the release's top issues.
func (c *counter) windows(ref core.Ref, now time.Time, span time.Duration, topIssues int) []core.ErrorWindow {
	first := bucketOf(now.Add(-span))
	last := bucketOf(now)
	n := int((last-first)/int64(BucketSize/time.Second)) + 1
	type relAgg struct {
		counts []int64
		issues map[string]int64
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rc := c.refs[ref]
	if rc == nil {
		return nil
	}
	rels := map[string]*relAgg{}
	for b, row := range rc.buckets {
		if b < first || b > last {
			continue
		}
		i := int((b - first) / int64(BucketSize/time.Second))
		for s, cl := range row {
			if cl.count == 0 {
				continue
			}
			ra := rels[s.release]
			if ra == nil {
				ra = &relAgg{counts: make([]int64, n), issues: map[string]int64{}}
				rels[s.release] = ra
			}
			ra.counts[i] += cl.count
			ra.issues[s.fingerprint] += cl.count
		}
	}
	out := make([]core.ErrorWindow, 0, len(rels))
	for rel, ra := range rels {
		w := core.ErrorWindow{Ref: ref, Release: rel, Buckets: make([]core.ErrorBucket, n)}
		for i := range n {
			w.Buckets[i] = core.ErrorBucket{
				Start: time.Unix(first+int64(i)*int64(BucketSize/time.Second), 0).UTC(),
				Count: ra.counts[i],
			}
		}
		w.Issues = issuesLocked(rc, ra.issues, topIssues)
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Release < out[j].Release })
	return out
}

// issues lists ref's issues seen in release (all releases when empty) over
// the whole retention, most frequent first.
func (c *counter) issues(ref core.Ref, release string) []core.ErrorIssue {
	c.mu.Lock()
	defer c.mu.Unlock()
	rc := c.refs[ref]
	if rc == nil {
		return nil
	}
	counts := map[string]int64{}
	for _, row := range rc.buckets {
		for s, cl := range row {
			if release == "" || s.release == release {
				counts[s.fingerprint] += cl.count
			}
		}
	}
	return issuesLocked(rc, counts, 0)
}

func issuesLocked(rc *refCounts, counts map[string]int64, top int) []core.ErrorIssue {
	out := make([]core.ErrorIssue, 0, len(counts))
	for fp, n := range counts {
		if n == 0 {
			continue
		}
		is := core.ErrorIssue{Fingerprint: fp, Count: n}
		if im := rc.issues[fp]; im != nil {
			is.Title, is.FirstSeen, is.FirstRelease = im.title, im.firstSeen, im.firstRelease
		}
		out = append(out, is)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Fingerprint < out[j].Fingerprint
	})
	if top > 0 && len(out) > top {
		out = out[:top]
	}
	return out
}
