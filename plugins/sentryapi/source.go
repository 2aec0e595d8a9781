package sentryapi

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// Source adapts Client to core.ErrorSource.
type Source struct {
	c   *Client
	now func() time.Time

	mu     sync.Mutex
	known  map[core.Ref]map[string]bool // Ripcord versions seen or deployed
	counts map[core.Ref]*polled
}

// polled is what the polls of one environment have counted.
type polled struct {
	counts  Counts    // Sentry release → bucket → count
	through time.Time // the end of the last successful poll
}

var _ core.ErrorSource = (*Source)(nil)

// NewSource returns a core.ErrorSource over Sentry's Web API.
func NewSource(cfg Config) (*Source, error) {
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return &Source{c: c, now: time.Now, known: map[core.Ref]map[string]bool{}, counts: map[core.Ref]*polled{}}, nil
}

// Client is the underlying API client.
func (s *Source) Client() *Client { return s.c }

func (s *Source) sentryEnv(ref core.Ref) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.c.cfg.Envs[ref.Env]; ok {
		return e
	}
	return ref.Env
}

// MapEnvironment has the source ask Sentry for sentryEnv's errors when
// Ripcord asks for env's.
func (s *Source) MapEnvironment(env, sentryEnv string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c.cfg.Envs == nil {
		s.c.cfg.Envs = map[string]string{}
	}
	s.c.cfg.Envs[env] = sentryEnv
}

func (s *Source) sentryRelease(version string) string { return s.c.cfg.ReleasePrefix + version }

func (s *Source) version(release string) string {
	return strings.TrimPrefix(release, s.c.cfg.ReleasePrefix)
}

func (s *Source) remember(ref core.Ref, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rememberLocked(ref, version)
}

func (s *Source) rememberLocked(ref core.Ref, version string) {
	if s.known[ref] == nil {
		s.known[ref] = map[string]bool{}
	}
	s.known[ref][version] = true
}

func (s *Source) knownVersions(ref core.Ref) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for v := range s.known[ref] {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// Windows polls once and steps down as Sentry's capabilities allow:
//
//  1. The Discover events query (EventCounts): per-release counts in 10 s
//     buckets. The first poll asks for the whole Window; later ones for
//     the time since the last, plus Overlap, and replace those buckets.
//  2. If that fails (a plan or a Sentry-compatible server without
//     Discover), the issues list with firstRelease:V for each release
//     known (from earlier polls and MarkDeploy): hourly counts of the
//     issues each release introduced.
//  3. If that fails too, or no release is known, windows that say
//     "counts unavailable: <reason>", never zeros.
func (s *Source) Windows(ctx context.Context, ref core.Ref) []core.ErrorWindow {
	env := s.sentryEnv(ref)
	now := s.now()
	s.mu.Lock()
	p := s.counts[ref]
	if p == nil {
		p = &polled{counts: Counts{}}
		s.counts[ref] = p
	}
	from := now.Add(-s.c.cfg.Window)
	if !p.through.IsZero() && p.through.Add(-s.c.cfg.Overlap).After(from) {
		from = p.through.Add(-s.c.cfg.Overlap)
	}
	s.mu.Unlock()
	from = time.Unix(bucketOf(from), 0)
	counts, err := s.c.EventCounts(ctx, env, from, now)
	if err == nil {
		return s.merge(ref, p, counts, from, now)
	}
	s.c.cfg.Logf("sentry api: counting errors of %s failed, using the issues list: %v", ref, err)
	versions := s.knownVersions(ref)
	if len(versions) == 0 {
		return []core.ErrorWindow{{Ref: ref, Unavailable: "counts unavailable: " + reason(err) + "; no known release to list issues for"}}
	}
	out := make([]core.ErrorWindow, 0, len(versions))
	for _, v := range versions {
		w := core.ErrorWindow{Ref: ref, Release: v}
		issues, ierr := s.c.ListIssues(ctx, env, "firstRelease:"+s.sentryRelease(v))
		if ierr != nil {
			w.Unavailable = "counts unavailable: " + reason(err) + "; issues list: " + reason(ierr)
		} else {
			w.Buckets = issueBuckets(issues)
			w.Issues = toErrorIssues(issues, v)
		}
		out = append(out, w)
	}
	return out
}

// merge replaces the buckets from..now with a poll's counts and returns
// every release's dense window.
func (s *Source) merge(ref core.Ref, p *polled, counts Counts, from, now time.Time) []core.ErrorWindow {
	s.mu.Lock()
	defer s.mu.Unlock()
	lo, hi := bucketOf(from), bucketOf(now)
	oldest := bucketOf(now.Add(-s.c.cfg.Window))
	for rel, m := range p.counts {
		for b := range m {
			if b >= lo || b < oldest {
				delete(m, b) // asked again, or out of the window
			}
		}
		if len(m) == 0 {
			delete(p.counts, rel)
		}
	}
	for rel, m := range counts {
		dst := p.counts[rel]
		if dst == nil {
			dst = map[int64]int64{}
			p.counts[rel] = dst
		}
		for b, n := range m {
			if b >= oldest && b <= hi {
				dst[b] += n
			}
		}
	}
	p.through = now
	step := int64(BucketWidth / time.Second)
	out := make([]core.ErrorWindow, 0, len(p.counts))
	for rel, m := range p.counts {
		v := s.version(rel)
		s.rememberLocked(ref, v)
		w := core.ErrorWindow{Ref: ref, Release: v, Buckets: make([]core.ErrorBucket, 0, (hi-oldest)/step+1)}
		for b := oldest; b <= hi; b += step {
			w.Buckets = append(w.Buckets, core.ErrorBucket{Start: time.Unix(b, 0).UTC(), Count: m[b]})
		}
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Release < out[j].Release })
	return out
}

// reason is a short, secret-free cause for the screen.
func reason(err error) string {
	var ae *APIError
	var rl *RateLimitedError
	switch {
	case errors.As(err, &ae):
		if ae.Detail != "" {
			return fmt.Sprintf("%s answered %d (%s)", ae.Endpoint, ae.Status, ae.Detail)
		}
		return fmt.Sprintf("%s answered %d", ae.Endpoint, ae.Status)
	case errors.As(err, &rl):
		return rl.Error()
	default:
		return err.Error()
	}
}

// WatchCounts polls every PollEvery (one minute by default) and pushes
// each poll's windows. After a poll that could not count, the next one
// waits twice as long as the last, up to MaxBackoff, so a Sentry that
// refuses or limits the source is not hammered. It returns ctx's error
// when ctx ends.
func (s *Source) WatchCounts(ctx context.Context, ref core.Ref, fn func(core.ErrorWindow)) error {
	wait := s.c.cfg.PollEvery
	for {
		failed := false
		for _, w := range s.Windows(ctx, ref) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failed = failed || w.Unavailable != ""
			fn(w)
		}
		switch {
		case !failed:
			wait = s.c.cfg.PollEvery
		case wait < s.c.cfg.MaxBackoff:
			wait = min(2*wait, s.c.cfg.MaxBackoff)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Issues lists the issues first seen in release (firstRelease:V).
func (s *Source) Issues(ctx context.Context, ref core.Ref, release string) ([]core.ErrorIssue, error) {
	issues, err := s.c.ListIssues(ctx, s.sentryEnv(ref), "firstRelease:"+s.sentryRelease(release))
	if err != nil {
		return nil, fmt.Errorf("listing issues of %s in %s: %w", release, ref, err)
	}
	return toErrorIssues(issues, release), nil
}

// MarkDeploy creates a Sentry deploy of release in ref's environment.
func (s *Source) MarkDeploy(ctx context.Context, ref core.Ref, release string) error {
	s.remember(ref, release)
	if err := s.c.CreateDeploy(ctx, s.sentryRelease(release), s.sentryEnv(ref)); err != nil {
		return fmt.Errorf("marking deploy of %s in %s: %w", release, ref, err)
	}
	return nil
}
