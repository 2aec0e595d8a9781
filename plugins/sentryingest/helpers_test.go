package sentryingest

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/ripcordhq/ripcord/core"
)

// memStore is an in-memory CountStore that adds increments per key, as
// core.Store implementations do.
type memStore struct {
	mu   sync.Mutex
	rows map[string]core.ErrorCount
	puts int
}

func newMemStore() *memStore { return &memStore{rows: map[string]core.ErrorCount{}} }

func (m *memStore) PutErrorCounts(_ context.Context, counts []core.ErrorCount) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.puts++
	for _, c := range counts {
		k := c.Project + "\x00" + c.Ref.String() + "\x00" + c.Release + "\x00" + c.Level + "\x00" + c.Fingerprint + "\x00" + c.Bucket.UTC().Format(time.RFC3339)
		if old, ok := m.rows[k]; ok {
			c.Count += old.Count
		}
		m.rows[k] = c
	}
	return nil
}

func (m *memStore) ErrorCounts(_ context.Context, ref core.Ref, since time.Time) ([]core.ErrorCount, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []core.ErrorCount
	for _, c := range m.rows {
		if c.Ref == ref && !c.Bucket.Before(since) {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Bucket.Before(out[j].Bucket) })
	return out, nil
}

func (m *memStore) total(ref core.Ref, release string) int64 {
	rows, _ := m.ErrorCounts(context.Background(), ref, time.Time{})
	var n int64
	for _, r := range rows {
		if release == "" || r.Release == release {
			n += r.Count
		}
	}
	return n
}

// wireStats observes what reaches the server, before the ingest sees it.
type wireStats struct {
	mu            sync.Mutex
	requests      int
	eventRequests int // requests carrying at least one event item
	statuses      map[int]int
	after429      int // event requests that arrived after the first 429
	seen429       bool
	itemTypes     map[string]int
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (ws *wireStats) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		hasEvent := false
		types := map[string]int{}
		if env, err := ParseEnvelope(body, ParseLimits{}); err == nil {
			for _, it := range env.Items {
				types[it.Type]++
				if it.Type == "event" {
					hasEvent = true
				}
			}
		}
		ws.mu.Lock()
		ws.requests++
		if hasEvent {
			ws.eventRequests++
			if ws.seen429 {
				ws.after429++
			}
		}
		for t, n := range types {
			ws.itemTypes[t] += n
		}
		ws.mu.Unlock()
		rec := &statusRecorder{ResponseWriter: w, status: 200}
		h.ServeHTTP(rec, r)
		ws.mu.Lock()
		ws.statuses[rec.status]++
		if rec.status == http.StatusTooManyRequests {
			ws.seen429 = true
		}
		ws.mu.Unlock()
	})
}

func newWireStats() *wireStats {
	return &wireStats{statuses: map[int]int{}, itemTypes: map[string]int{}}
}

// serve runs h on a fresh 127.0.0.1 port and returns the base URL.
func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

func newIngest(t testing.TB, cfg Config) *Ingest {
	t.Helper()
	if cfg.Service == "" {
		cfg.Service = "shop"
	}
	if cfg.Keys == nil {
		cfg.Keys = map[string]string{"1": "publickey"}
	}
	ing, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ing.Close(context.Background()) })
	return ing
}

// sdkClient is a real sentry-go client with the SDK's default transport.
func sdkClient(t testing.TB, addr, key, project, env, release string) *sentry.Client {
	t.Helper()
	c, err := sentry.NewClient(sentry.ClientOptions{
		Dsn:              "http://" + key + "@" + addr + "/" + project,
		Environment:      env,
		Release:          release,
		EnableTracing:    true,
		TracesSampleRate: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func flush(t testing.TB, c *sentry.Client) {
	t.Helper()
	if !c.Flush(10 * time.Second) {
		t.Fatal("sentry-go Flush timed out")
	}
}

func total(ws []core.ErrorWindow, release string) int64 {
	for _, w := range ws {
		if w.Release == release {
			return w.Total()
		}
	}
	return 0
}
