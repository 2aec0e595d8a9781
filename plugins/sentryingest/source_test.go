package sentryingest

import (
	"bytes"
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// A burst of events reaches a watcher as few pushes, never closer than
// PushEvery, and the last push holds every event.
func TestWatchCountsCoalescesPushes(t *testing.T) {
	ing := newIngest(t, Config{})
	ref := core.Ref{Service: "shop", Env: "canary"}
	var mu sync.Mutex
	var at []time.Time
	latest := make(chan int64, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ing.WatchCounts(ctx, ref, func(w core.ErrorWindow) {
			mu.Lock()
			at = append(at, time.Now())
			mu.Unlock()
			latest <- w.Total()
		})
	}()
	// Wait until the watcher is registered: the first event's push.
	post := func() {
		req := httptest.NewRequest("POST", "/api/1/envelope/?sentry_key=publickey", bytes.NewReader(realEnvelope(t)))
		rec := httptest.NewRecorder()
		ing.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("status %d", rec.Code)
		}
	}
	deadline := time.After(10 * time.Second)
	post()
	for got := int64(0); got < 1; {
		select {
		case got = <-latest:
		case <-deadline:
			t.Fatal("no first push")
		}
	}
	for range 199 {
		post()
	}
	for got := int64(0); got < 200; {
		select {
		case got = <-latest:
		case <-deadline:
			t.Fatalf("last push has %d of 200 events", got)
		}
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("WatchCounts returned %v, want context.Canceled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(at) >= 50 {
		t.Errorf("%d pushes for 200 events: not coalesced", len(at))
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < 250*time.Millisecond {
			t.Errorf("pushes %d and %d only %v apart", i-1, i, gap)
		}
	}
}

func TestWindowsAndMarkDeploy(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 5, 0, time.UTC)
	clock := now
	ing := newIngest(t, Config{Now: func() time.Time { return clock }, Window: time.Minute})
	ref := core.Ref{Service: "shop", Env: "canary"}
	ev := Event{Level: "error", Release: "v1", Fingerprint: "f", Title: "T"}
	ing.counts.add("1", ref, ev, now.Add(-50*time.Second))
	ing.counts.add("1", ref, ev, now)
	ing.counts.add("1", ref, ev, now)
	ing.counts.add("1", ref, ev, now.Add(-2*time.Minute)) // outside the window
	ws := ing.counts.windows(ref, now, time.Minute, 5)
	if len(ws) != 1 || len(ws[0].Buckets) != 7 {
		t.Fatalf("windows = %+v, want one release with 7 dense buckets", ws)
	}
	b := ws[0].Buckets
	if b[0].Start != time.Date(2026, 11, 25, 11, 59, 0, 0, time.UTC) || b[1].Count != 1 || b[6].Count != 2 || ws[0].Total() != 3 {
		t.Errorf("buckets = %+v", b)
	}
	if len(ws[0].Issues) != 1 || ws[0].Issues[0].FirstRelease != "v1" || ws[0].Issues[0].Count != 3 {
		t.Errorf("issues = %+v", ws[0].Issues)
	}
	// Pruning drops what is older than the retention.
	ing.counts.prune(now.Add(2 * time.Hour))
	if is := ing.counts.issues(ref, ""); len(is) != 1 || is[0].Count != 2 {
		t.Errorf("after prune issues = %+v, want only the 2 newest", is)
	}
	_ = ing.MarkDeploy(context.Background(), ref, "v2")
	if d := ing.Deploys(ref); len(d) != 1 || d[0].Release != "v2" || !d[0].At.Equal(now) {
		t.Errorf("deploys = %+v", d)
	}
}

type failOnceStore struct {
	*memStore
	failed bool
}

func (f *failOnceStore) PutErrorCounts(ctx context.Context, counts []core.ErrorCount) error {
	if !f.failed {
		f.failed = true
		return context.DeadlineExceeded
	}
	return f.memStore.PutErrorCounts(ctx, counts)
}

// Flushes write increments: a failed write is retried, and nothing is
// written twice.
func TestFlushWritesEachEventOnce(t *testing.T) {
	store := &failOnceStore{memStore: newMemStore()}
	ing := newIngest(t, Config{Store: store, FlushEvery: time.Hour})
	ref := core.Ref{Service: "shop", Env: "canary"}
	now := time.Now()
	ev := Event{Level: "error", Release: "v1", Fingerprint: "f"}
	ing.counts.add("1", ref, ev, now)
	ing.counts.add("1", ref, ev, now)
	if err := ing.Flush(context.Background()); err == nil {
		t.Fatal("first flush should report the store's failure")
	}
	ing.counts.add("1", ref, ev, now)
	for range 2 {
		if err := ing.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := store.total(ref, "v1"); got != 3 {
		t.Errorf("store holds %d, want 3", got)
	}
}
