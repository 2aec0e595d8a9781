package sentryingest

import (
	"context"
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
// calls fn once per release with errors in the last Window. It returns
// ctx's error when ctx ends, or nil when the ingest is closed.
func (ing *Ingest) WatchCounts(ctx context.Context, ref core.Ref, fn func(core.ErrorWindow)) error {
	if err := ing.counts.load(ctx, ing.cfg.Store, ref, ing.cfg.Now()); err != nil {
		ing.cfg.Logf("sentry ingest: %v (watching without the persisted baseline)", err)
	}
	ch := ing.watch.add(ref)
	defer ing.watch.remove(ref, ch)

	push := func() {
		for _, w := range ing.counts.windows(ref, ing.cfg.Now(), ing.cfg.Window, ing.cfg.TopIssues) {
			fn(w)
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
