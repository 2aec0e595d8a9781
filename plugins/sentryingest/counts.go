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

// cell is one series' count in one bucket. It is stored by value, keyed
// by the series' small id: about 40 bytes a cell, so the cell cap bounds
// memory tightly.
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
	ref     core.Ref
	buckets map[int64]map[uint32]cell // bucket start (unix seconds) → series id → count
	series  []series                  // by id
	ids     map[series]uint32
	issues  map[string]*issueMeta // by fingerprint
	// names holds one copy of each release, level, project and
	// fingerprint string, so the series of one issue share it (and never
	// pin a request's buffer).
	names   map[string]string
	loaded  bool
	loading chan struct{} // closed when the load finished
}

type dirtyKey struct {
	rc     *refCounts
	bucket int64
	id     uint32
}

// counter is the in-memory count table: 10 s buckets kept for retention,
// flushed to the store when dirty.
type counter struct {
	mu        sync.Mutex
	refs      map[core.Ref]*refCounts
	dirty     []dirtyKey
	cells     int
	maxCells  int
	maxIssues int
	retention time.Duration
}

func newCounter(retention time.Duration, maxCells, maxIssues int) *counter {
	return &counter{refs: map[core.Ref]*refCounts{}, retention: retention, maxCells: maxCells, maxIssues: maxIssues}
}

// refsOf lists the environments of service with counts, sorted.
func (c *counter) refsOf(service string) []core.Ref {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []core.Ref
	for ref := range c.refs {
		if ref.Service == service {
			out = append(out, ref)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Env < out[j].Env })
	return out
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
		rc = &refCounts{ref: ref, buckets: map[int64]map[uint32]cell{}, ids: map[series]uint32{},
			issues: map[string]*issueMeta{}, names: map[string]string{}}
		c.refs[ref] = rc
	}
	return rc
}

// maxNames bounds the intern table of one environment; past it strings
// are kept as they come (the caps on issues and series still bound them).
const maxNames = 10_000

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

// id returns the id of s, adding it (its strings interned) if new.
func (rc *refCounts) id(s series) uint32 {
	if id, ok := rc.ids[s]; ok {
		return id
	}
	s = series{project: rc.intern(s.project), release: rc.intern(s.release), level: rc.intern(s.level), fingerprint: rc.intern(s.fingerprint)}
	id := uint32(len(rc.series))
	rc.series = append(rc.series, s)
	rc.ids[s] = id
	return id
}

// overflowFingerprint replaces fingerprints once the table is full, so a
// client inventing a fingerprint per event cannot grow memory without
// bound; its events are still counted, and release totals stay exact.
const overflowFingerprint = "(too many distinct issues)"

// add counts one event at time now.
func (c *counter) add(project string, ref core.Ref, ev Event, now time.Time) {
	b := bucketOf(now)
	c.mu.Lock()
	defer c.mu.Unlock()
	rc := c.refLocked(ref)
	row := rc.buckets[b]
	if row == nil {
		row = map[uint32]cell{}
		rc.buckets[b] = row
	}
	if _, known := rc.issues[ev.Fingerprint]; !known && c.maxIssues > 0 && len(rc.issues) >= c.maxIssues {
		ev.Fingerprint, ev.Title = overflowFingerprint, overflowFingerprint
	}
	s := series{project: project, release: ev.Release, level: ev.Level, fingerprint: ev.Fingerprint}
	has := false
	if id, known := rc.ids[s]; known {
		_, has = row[id]
	}
	if !has && c.maxCells > 0 && c.cells >= c.maxCells {
		s.fingerprint = overflowFingerprint
		ev.Fingerprint, ev.Title = overflowFingerprint, overflowFingerprint
	}
	id := rc.id(s)
	cl, has := row[id]
	if !has {
		c.cells++
	}
	cl.count++
	if !cl.dirty {
		cl.dirty = true
		c.dirty = append(c.dirty, dirtyKey{rc: rc, bucket: b, id: id})
	}
	row[id] = cl
	im := rc.issues[s.fingerprint]
	if im == nil {
		im = &issueMeta{title: ev.Title, firstSeen: time.Unix(b, 0).UTC(), firstRelease: rc.intern(ev.Release)}
		rc.issues[rc.intern(s.fingerprint)] = im
	}
	if ev.Title != "" && ev.Title != im.title {
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
			row = map[uint32]cell{}
			rc.buckets[b] = row
		}
		id := rc.id(series{project: r.Project, release: r.Release, level: r.Level, fingerprint: r.Fingerprint})
		cl, has := row[id]
		if !has {
			c.cells++
		}
		cl.count += r.Count
		cl.flushed += r.Count
		row[id] = cl
		start := time.Unix(b, 0).UTC()
		im := rc.issues[r.Fingerprint]
		if im == nil {
			im = &issueMeta{firstSeen: start, firstRelease: rc.intern(r.Release)}
			rc.issues[rc.intern(r.Fingerprint)] = im
		} else if start.Before(im.firstSeen) {
			im.firstSeen, im.firstRelease = start, rc.intern(r.Release)
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
		row := k.rc.buckets[k.bucket]
		cl, ok := row[k.id]
		if !ok || !cl.dirty {
			continue // pruned meanwhile
		}
		cl.dirty = false
		delta := cl.count - cl.flushed
		cl.flushed = cl.count
		row[k.id] = cl
		if delta == 0 {
			continue
		}
		s := k.rc.series[k.id]
		title := ""
		if im := k.rc.issues[s.fingerprint]; im != nil {
			title = im.title
		}
		out = append(out, core.ErrorCount{
			Project: s.project, Ref: k.rc.ref, Release: s.release, Level: s.level,
			Fingerprint: s.fingerprint, Title: title,
			Bucket: time.Unix(k.bucket, 0).UTC(), Count: delta,
		})
	}
	// A burst's worth of keys is not kept for good.
	if cap(c.dirty) > 4096 {
		c.dirty = nil
	} else {
		c.dirty = c.dirty[:0]
	}
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
		id, ok := rc.ids[series{project: r.Project, release: r.Release, level: r.Level, fingerprint: r.Fingerprint}]
		row := rc.buckets[b]
		cl, has := row[id]
		if !ok || !has {
			continue
		}
		cl.flushed -= r.Count
		if !cl.dirty {
			cl.dirty = true
			c.dirty = append(c.dirty, dirtyKey{rc: rc, bucket: b, id: id})
		}
		row[id] = cl
	}
}

// prune drops buckets and issues older than the retention, and series no
// bucket uses any more.
func (c *counter) prune(now time.Time) {
	cut := bucketOf(now.Add(-c.retention))
	c.mu.Lock()
	defer c.mu.Unlock()
	for ref, rc := range c.refs {
		pruned := false
		for b, row := range rc.buckets {
			if b < cut {
				c.cells -= len(row)
				delete(rc.buckets, b)
				pruned = true
			}
		}
		for fp, im := range rc.issues {
			if im.lastSeen.Before(time.Unix(cut, 0)) {
				delete(rc.issues, fp)
			}
		}
		if len(rc.buckets) == 0 && rc.loaded && len(rc.issues) == 0 {
			delete(c.refs, ref) // nothing left: a stray environment is forgotten
			continue
		}
		if pruned {
			rc.compact(c)
		}
	}
}

// compact renumbers the series still in use, so invented ones do not
// outlive their buckets. Dirty keys are renumbered with them.
func (rc *refCounts) compact(c *counter) {
	used := make(map[uint32]uint32, len(rc.series))
	for _, row := range rc.buckets {
		for id := range row {
			used[id] = 0
		}
	}
	if len(used) == len(rc.series) {
		return
	}
	old := rc.series
	rc.series = make([]series, 0, len(used))
	rc.ids = make(map[series]uint32, len(used))
	for id := range old {
		if _, ok := used[uint32(id)]; ok {
			nid := uint32(len(rc.series))
			used[uint32(id)] = nid
			rc.series = append(rc.series, old[id])
			rc.ids[old[id]] = nid
		}
	}
	for b, row := range rc.buckets {
		nrow := make(map[uint32]cell, len(row))
		for id, cl := range row {
			nrow[used[id]] = cl
		}
		rc.buckets[b] = nrow
	}
	for i, k := range c.dirty {
		if k.rc == rc {
			c.dirty[i].id = used[k.id]
		}
	}
	names := make(map[string]string, len(rc.names))
	keep := func(s string) {
		if v, ok := rc.names[s]; ok {
			names[s] = v
		}
	}
	for _, s := range rc.series {
		keep(s.project)
		keep(s.release)
		keep(s.level)
		keep(s.fingerprint)
	}
	for fp, im := range rc.issues {
		keep(fp)
		keep(im.firstRelease)
	}
	rc.names = names
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
		for id, cl := range row {
			if cl.count == 0 {
				continue
			}
			s := rc.series[id]
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
		for id, cl := range row {
			if s := rc.series[id]; release == "" || s.release == release {
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
