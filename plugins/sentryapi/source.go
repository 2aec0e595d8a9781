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
	c *Client

	mu    sync.Mutex
	known map[core.Ref]map[string]bool // Ripcord versions seen or deployed
}

var _ core.ErrorSource = (*Source)(nil)

// NewSource returns a core.ErrorSource over Sentry's Web API.
func NewSource(cfg Config) (*Source, error) {
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return &Source{c: c, known: map[core.Ref]map[string]bool{}}, nil
}

// Client is the underlying API client.
func (s *Source) Client() *Client { return s.c }

func (s *Source) sentryEnv(ref core.Ref) string {
	if e, ok := s.c.cfg.Envs[ref.Env]; ok {
		return e
	}
	return ref.Env
}

func (s *Source) sentryRelease(version string) string { return s.c.cfg.ReleasePrefix + version }

func (s *Source) version(release string) string {
	return strings.TrimPrefix(release, s.c.cfg.ReleasePrefix)
}

func (s *Source) remember(ref core.Ref, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
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
//  1. events-stats with topEvents by release: per-minute counts.
//  2. If that fails (403/404 on plans or servers without it, GlitchTip
//     and the like), the issues list with firstRelease:V for each release
//     known (from earlier polls and MarkDeploy): hourly counts of the
//     issues each release introduced.
//  3. If that fails too, or no release is known, windows that say
//     "counts unavailable: <reason>", never zeros.
func (s *Source) Windows(ctx context.Context, ref core.Ref) []core.ErrorWindow {
	env := s.sentryEnv(ref)
	stats, statsErr := s.c.EventsStats(ctx, env)
	if statsErr == nil {
		out := make([]core.ErrorWindow, 0, len(stats))
		for rel, b := range stats {
			v := s.version(rel)
			if rel != AllReleases {
				s.remember(ref, v)
			}
			out = append(out, core.ErrorWindow{Ref: ref, Release: v, Buckets: b})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Release < out[j].Release })
		return out
	}
	s.c.cfg.Logf("sentry api: events-stats for %s failed, using the issues list: %v", ref, statsErr)
	versions := s.knownVersions(ref)
	if len(versions) == 0 {
		return []core.ErrorWindow{{Ref: ref, Unavailable: "counts unavailable: " + reason(statsErr) + "; no known release to list issues for"}}
	}
	out := make([]core.ErrorWindow, 0, len(versions))
	for _, v := range versions {
		w := core.ErrorWindow{Ref: ref, Release: v}
		issues, err := s.c.ListIssues(ctx, env, "firstRelease:"+s.sentryRelease(v))
		if err != nil {
			w.Unavailable = "counts unavailable: " + reason(statsErr) + "; issues list: " + reason(err)
		} else {
			w.Buckets = issueBuckets(issues)
			w.Issues = toErrorIssues(issues, v)
		}
		out = append(out, w)
	}
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
// each poll's windows. It returns ctx's error when ctx ends.
func (s *Source) WatchCounts(ctx context.Context, ref core.Ref, fn func(core.ErrorWindow)) error {
	t := time.NewTicker(s.c.cfg.PollEvery)
	defer t.Stop()
	for {
		for _, w := range s.Windows(ctx, ref) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fn(w)
		}
		select {
		case <-ctx.Done():
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
