package sentryingest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// maxDeployMarkers bounds the markers kept per environment.
const maxDeployMarkers = 100

// DeployMarker records that a release went out in an environment.
type DeployMarker struct {
	Ref     core.Ref
	Release string
	At      time.Time
}

// watchers fans "ref changed" signals out to WatchCounts loops. A signal
// is a non-blocking send on a one-slot channel, so a burst of events costs
// the ingest nothing more than one pending wake-up per watcher.
type watchers struct {
	mu     sync.Mutex
	byRef  map[core.Ref]map[chan struct{}]struct{}
	closed chan struct{}
	once   sync.Once
}

func newWatchers() *watchers {
	return &watchers{byRef: map[core.Ref]map[chan struct{}]struct{}{}, closed: make(chan struct{})}
}

func (ws *watchers) add(ref core.Ref) chan struct{} {
	ch := make(chan struct{}, 1)
	ws.mu.Lock()
	defer ws.mu.Unlock()
	set := ws.byRef[ref]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		ws.byRef[ref] = set
	}
	set[ch] = struct{}{}
	return ch
}

func (ws *watchers) remove(ref core.Ref, ch chan struct{}) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	delete(ws.byRef[ref], ch)
	if len(ws.byRef[ref]) == 0 {
		delete(ws.byRef, ref)
	}
}

func (ws *watchers) notify(ref core.Ref) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for ch := range ws.byRef[ref] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (ws *watchers) closeAll() { ws.once.Do(func() { close(ws.closed) }) }

// WatchCounts pushes ref's per-release windows: once at the start, then
// whenever counts change, at most once per PushEvery (250 ms), and at every
// bucket boundary so windows keep sliding while nothing arrives. Each push
// calls fn once per release with errors in the last Window, or once with
// a heartbeat (core.ErrorWindow.Heartbeat) when there are none. It returns
// ctx's error when ctx ends, or nil when the ingest is closed.
func (ing *Ingest) WatchCounts(ctx context.Context, ref core.Ref, fn func(core.ErrorWindow)) error {
	if err := ing.counts.load(ctx, ing.cfg.Store, ref, ing.cfg.Now()); err != nil {
		ing.cfg.Logf("sentry ingest: %v (watching without the persisted baseline)", err)
	}
	ch := ing.watch.add(ref)
	defer ing.watch.remove(ref, ch)

	push := func() {
		now := ing.cfg.Now()
		ws := ing.counts.windows(ref, now, ing.cfg.Window, ing.cfg.TopIssues)
		if len(ws) == 0 {
			fn(core.ErrorWindow{Ref: ref}) // a heartbeat: up, nothing to report
		}
		for _, w := range ws {
			if w.Release == OtherReleases {
				w.Warning = fmt.Sprintf("%d errors of releases beyond the %d distinct ones a key may report in %s were counted together here",
					w.Total(), ing.cfg.MaxReleases, ing.cfg.Window)
			}
			fn(w)
		}
		if ing.serves(ref.Env) {
			for _, w := range ing.strays(ref, now) {
				fn(w)
			}
		}
	}
	push()
	lastPush := time.Now()
	slide := time.NewTicker(BucketSize)
	defer slide.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ing.watch.closed:
			return nil
		case <-slide.C:
		case <-ch:
			// Coalesce: everything that arrives before the next push slot
			// is in that push.
			if wait := ing.cfg.PushEvery - time.Since(lastPush); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-ing.watch.closed:
					t.Stop()
					return nil
				case <-t.C:
				}
			}
			select { // the wake-up that came in while waiting is covered
			case <-ch:
			default:
			}
		}
		push()
		lastPush = time.Now()
	}
}

// strays are the windows that tell a served environment's watchers about
// events this ingest counted for environments it does not serve (another
// name, none at all, or beyond the cap): one window per such environment,
// all its releases summed, with a warning saying what to fix.
func (ing *Ingest) strays(ref core.Ref, now time.Time) []core.ErrorWindow {
	var out []core.ErrorWindow
	for _, other := range ing.counts.refsOf(ref.Service) {
		if ing.serves(other.Env) {
			continue
		}
		sum := core.ErrorWindow{Ref: ref}
		for _, w := range ing.counts.windows(other, now, ing.cfg.Window, 0) {
			if sum.Buckets == nil {
				sum.Buckets = make([]core.ErrorBucket, len(w.Buckets))
				copy(sum.Buckets, w.Buckets)
				continue
			}
			for i := range w.Buckets {
				sum.Buckets[i].Count += w.Buckets[i].Count
			}
		}
		n := sum.Total()
		if n == 0 {
			continue
		}
		served := strings.Join(ing.cfg.Environments, ", ")
		switch other.Env {
		case NoEnvironment:
			sum.Release = NoEnvironment
			sum.Warning = fmt.Sprintf("%d errors in the last %s named no environment, so they are not counted for %s: set SENTRY_ENVIRONMENT in the app, or map \"\" under envs:", n, ing.cfg.Window, served)
		case OtherEnvironments:
			sum.Release = OtherEnvironments
			sum.Warning = fmt.Sprintf("%d errors in the last %s came from environments beyond the %d a key may report, and are not counted for %s", n, ing.cfg.Window, ing.cfg.MaxEnvironments, served)
		default:
			sum.Release = fmt.Sprintf("(environment %q)", other.Env)
			sum.Warning = fmt.Sprintf("%d errors in the last %s came from environment %q, which this ingest does not count for %s: fix the app's environment, or map it under envs:", n, ing.cfg.Window, other.Env, served)
		}
		out = append(out, sum)
	}
	return out
}

// deployed reports whether release was marked deployed in ref: such a
// release always counts on its own, whatever else a key reports.
func (ing *Ingest) deployed(ref core.Ref, release string) bool {
	ing.deployMu.Lock()
	defer ing.deployMu.Unlock()
	for _, d := range ing.deploys[ref] {
		if d.Release == release {
			return true
		}
	}
	return false
}

// Issues lists the issues seen in release within the retention (every
// release when release is empty), most frequent first. FirstRelease is the
// release a fingerprint was first seen in within the retention.
func (ing *Ingest) Issues(ctx context.Context, ref core.Ref, release string) ([]core.ErrorIssue, error) {
	if err := ing.counts.load(ctx, ing.cfg.Store, ref, ing.cfg.Now()); err != nil {
		return nil, err
	}
	return ing.counts.issues(ref, release), nil
}

// MarkDeploy records the marker in memory: the ingest is its own tracker,
// so there is no one else to tell.
func (ing *Ingest) MarkDeploy(_ context.Context, ref core.Ref, release string) error {
	ing.deployMu.Lock()
	defer ing.deployMu.Unlock()
	ds := append(ing.deploys[ref], DeployMarker{Ref: ref, Release: release, At: ing.cfg.Now()})
	if len(ds) > maxDeployMarkers {
		ds = ds[len(ds)-maxDeployMarkers:]
	}
	ing.deploys[ref] = ds
	return nil
}

// Deploys returns the markers recorded for ref, oldest first.
func (ing *Ingest) Deploys(ref core.Ref) []DeployMarker {
	ing.deployMu.Lock()
	defer ing.deployMu.Unlock()
	return append([]DeployMarker(nil), ing.deploys[ref]...)
}
