package sentryapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

const token = "sntrys_test_token_do_not_log"

// Fixtures: made-up values in the shapes Sentry documents (events-stats
// per the frontend's EventsStats/MultiSeriesEventsStats types, issues per
// the issues list docs with count as a string as real payloads send it,
// deploys per api-docs/paths/releases/deploys.json).

// made-up values, top-events shape (topEvents + field=release)
const topEventsBody = `{
 "shop@1.2.3": {"data": [[1732550400, [{"count": 0}]], [1732550460, [{"count": 3}]], [1732550520, [{"count": 41}]]], "order": 0, "start": 1732550400, "end": 1732550580},
 "shop@1.2.2": {"data": [[1732550400, [{"count": 2}]], [1732550460, [{"count": 1}]], [1732550520, [{"count": 2}]]], "order": 1, "start": 1732550400, "end": 1732550580},
 "Other":      {"data": [[1732550400, [{"count": 9}]]], "order": 2}
}`

// made-up values, single-series shape
const singleSeriesBody = `{"data": [[1732550400, [{"count": 0}]], [1732550460, [{"count": 3}]], [1732550520, [{"count": 41}]]],
 "start": 1732550400, "end": 1732550580, "isMetricsData": false}`

// made-up values, issues list page 1 of 2 (count as a string)
const issuesPage1 = `[{"id": "11", "shortId": "SHOP-B", "title": "KeyError: 'cart'", "level": "error", "status": "unresolved",
  "count": "150", "userCount": 3, "firstSeen": "2026-11-25T12:00:10Z", "lastSeen": "2026-11-25T12:20:00Z",
  "project": {"id": "2", "slug": "shop"}, "stats": {"24h": [[1764072000.0, 100], [1764075600.0, 50]]}}]`

// made-up values, issues list page 2 of 2
const issuesPage2 = `[{"id": "12", "shortId": "SHOP-C", "title": "TimeoutError: db", "level": "error", "status": "unresolved",
  "count": 7, "userCount": 1, "firstSeen": "2026-11-25T12:05:00Z", "lastSeen": "2026-11-25T12:06:00Z",
  "project": {"id": "2", "slug": "shop"}, "stats": {"24h": [[1764075600.0, 7]]}}]`

// made-up values, deploy created
const deployBody = `{"environment": "production", "name": "ripcord", "url": null, "dateStarted": null,
  "dateFinished": "2026-11-25T12:00:00.000000Z", "id": "1234567"}`

type fakeSentry struct {
	t  *testing.T
	mu sync.Mutex
	// handlers by path; each returns status, headers, body
	routes map[string]func(r *http.Request, n int) (int, http.Header, string)
	calls  map[string][]*http.Request
	times  map[string][]time.Time
	bodies map[string][]string
}

func newFake(t *testing.T) (*fakeSentry, string) {
	f := &fakeSentry{t: t, routes: map[string]func(*http.Request, int) (int, http.Header, string){},
		calls: map[string][]*http.Request{}, times: map[string][]time.Time{}, bodies: map[string][]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *fakeSentry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	p := r.URL.EscapedPath()
	f.calls[p] = append(f.calls[p], r)
	f.times[p] = append(f.times[p], time.Now())
	f.bodies[p] = append(f.bodies[p], string(body))
	n := len(f.calls[p])
	h := f.routes[p]
	f.mu.Unlock()
	if got := r.Header.Get("Authorization"); got != "Bearer "+token {
		w.WriteHeader(401)
		fmt.Fprint(w, `{"detail": "Invalid token"}`)
		return
	}
	if h == nil {
		w.WriteHeader(404)
		fmt.Fprint(w, `{"detail": "The requested resource does not exist"}`)
		return
	}
	status, hdr, b := h(r, n)
	for k, vs := range hdr {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	// Every Sentry API response carries the rate-limit headers.
	if w.Header().Get("X-Sentry-Rate-Limit-Limit") == "" {
		w.Header().Set("X-Sentry-Rate-Limit-Limit", "50")
		w.Header().Set("X-Sentry-Rate-Limit-Remaining", "49")
		w.Header().Set("X-Sentry-Rate-Limit-Reset", strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10))
		w.Header().Set("X-Sentry-Rate-Limit-ConcurrentLimit", "25")
		w.Header().Set("X-Sentry-Rate-Limit-ConcurrentRemaining", "24")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprint(w, b)
}

func (f *fakeSentry) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls[path])
}

func newSource(t *testing.T, url string, mod func(*Config)) *Source {
	cfg := Config{BaseURL: url, Org: "acme", Token: token, Projects: []string{"2"},
		Envs: map[string]string{"prod": "production"}, ReleasePrefix: "shop@"}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const (
	statsPath  = "/api/0/organizations/acme/events-stats/"
	issuesPath = "/api/0/organizations/acme/issues/"
)

var prod = core.Ref{Service: "shop", Env: "prod"}

func TestEventsStatsPerRelease(t *testing.T) {
	f, url := newFake(t)
	f.routes[statsPath] = func(r *http.Request, _ int) (int, http.Header, string) { return 200, nil, topEventsBody }
	s := newSource(t, url, nil)

	ws := s.Windows(context.Background(), prod)
	if len(ws) != 2 {
		t.Fatalf("windows = %+v, want 2 releases (Other dropped)", ws)
	}
	if ws[0].Release != "1.2.2" || ws[0].Total() != 5 || ws[1].Release != "1.2.3" || ws[1].Total() != 44 {
		t.Errorf("windows = %s %d, %s %d", ws[0].Release, ws[0].Total(), ws[1].Release, ws[1].Total())
	}
	if b := ws[1].Buckets; len(b) != 3 || !b[2].Start.Equal(time.Unix(1732550520, 0)) || b[2].Count != 41 {
		t.Errorf("buckets = %+v", b)
	}
	r := f.calls[statsPath][0]
	q := r.URL.Query()
	if q.Get("environment") != "production" || q["field"][0] != "release" || q.Get("topEvents") != "5" ||
		q.Get("interval") != "1m" || q.Get("yAxis") != "count()" || q.Get("project") != "2" || q.Get("excludeOther") != "1" {
		t.Errorf("query = %v", q)
	}
}

func TestSingleSeriesShape(t *testing.T) {
	got, err := parseEventsStats([]byte(singleSeriesBody))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[AllReleases]) != 3 || got[AllReleases][1].Count != 3 {
		t.Errorf("parsed = %+v", got)
	}
	if _, err := parseEventsStats([]byte(`{"data": [[1, "x"]]}`)); err == nil {
		t.Error("a point without values parsed")
	}
}

func TestIssuesFollowLinkCursor(t *testing.T) {
	f, url := newFake(t)
	f.routes[issuesPath] = func(r *http.Request, n int) (int, http.Header, string) {
		h := http.Header{}
		if n == 1 {
			if r.URL.Query().Get("cursor") != "" {
				t.Errorf("first page sent a cursor")
			}
			h.Set("Link", `<https://sentry.io/api/0/organizations/acme/issues/?&cursor=0:0:1>; rel="previous"; results="false"; cursor="0:0:1", `+
				`<https://sentry.io/api/0/organizations/acme/issues/?&cursor=0:100:0>; rel="next"; results="true"; cursor="0:100:0"`)
			return 200, h, issuesPage1
		}
		if got := r.URL.Query().Get("cursor"); got != "0:100:0" {
			t.Errorf("second page cursor = %q", got)
		}
		h.Set("Link", `<https://sentry.io/api/0/organizations/acme/issues/?&cursor=0:0:1>; rel="previous"; results="true"; cursor="0:0:1", `+
			`<https://sentry.io/api/0/organizations/acme/issues/?&cursor=0:200:0>; rel="next"; results="false"; cursor="0:200:0"`)
		return 200, h, issuesPage2
	}
	s := newSource(t, url, nil)
	issues, err := s.Issues(context.Background(), prod, "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if f.count(issuesPath) != 2 {
		t.Errorf("%d requests, want 2 pages", f.count(issuesPath))
	}
	if len(issues) != 2 || issues[0].Fingerprint != "SHOP-B" || issues[0].Count != 150 || issues[1].Count != 7 ||
		issues[0].FirstRelease != "1.2.3" || issues[0].Title != "KeyError: 'cart'" {
		t.Errorf("issues = %+v", issues)
	}
	if q := f.calls[issuesPath][0].URL.Query(); q.Get("query") != "firstRelease:shop@1.2.3" || q.Get("environment") != "production" {
		t.Errorf("query = %v", q)
	}
}

// A 429 is waited out for Retry-After, then retried once.
func TestRetryAfter429(t *testing.T) {
	f, url := newFake(t)
	f.routes[statsPath] = func(r *http.Request, n int) (int, http.Header, string) {
		if n == 1 {
			h := http.Header{"Retry-After": {"1"}}
			return 429, h, `{"detail": "You are attempting to use this endpoint too frequently. Limit is 50 requests in 1 seconds"}`
		}
		return 200, nil, topEventsBody
	}
	s := newSource(t, url, nil)
	if _, err := s.Client().EventsStats(context.Background(), "production"); err != nil {
		t.Fatal(err)
	}
	ts := f.times[statsPath]
	if len(ts) != 2 {
		t.Fatalf("%d requests, want 2", len(ts))
	}
	if gap := ts[1].Sub(ts[0]); gap < time.Second {
		t.Errorf("retried after %v, before Retry-After: 1", gap)
	}
}

// With no requests left in the window, nothing is sent until the reset;
// a reset later than MaxRateLimitWait fails without a request.
func TestRateLimitRemainingZero(t *testing.T) {
	f, url := newFake(t)
	var reset time.Time
	f.routes[statsPath] = func(r *http.Request, n int) (int, http.Header, string) {
		reset = time.Now().Add(1500 * time.Millisecond).Truncate(time.Second).Add(time.Second)
		h := http.Header{
			"X-Sentry-Rate-Limit-Limit":     {"50"},
			"X-Sentry-Rate-Limit-Remaining": {"0"},
			"X-Sentry-Rate-Limit-Reset":     {strconv.FormatInt(reset.Unix(), 10)},
		}
		return 200, h, topEventsBody
	}
	s := newSource(t, url, nil)
	ctx := context.Background()
	if _, err := s.Client().EventsStats(ctx, "production"); err != nil {
		t.Fatal(err)
	}
	first := reset
	if _, err := s.Client().EventsStats(ctx, "production"); err != nil {
		t.Fatal(err)
	}
	if at := f.times[statsPath][1]; at.Before(first) {
		t.Errorf("second request at %v, before the reset %v", at, first)
	}

	impatient := newSource(t, url, func(c *Config) { c.MaxRateLimitWait = 100 * time.Millisecond })
	if _, err := impatient.Client().EventsStats(ctx, "production"); err != nil {
		t.Fatal(err)
	}
	before := f.count(statsPath)
	_, err := impatient.Client().EventsStats(ctx, "production")
	var rl *RateLimitedError
	if !errors.As(err, &rl) {
		t.Fatalf("err = %v, want RateLimitedError", err)
	}
	if f.count(statsPath) != before {
		t.Error("a request was sent while rate limited")
	}
}

func TestStepDownToIssuesThenUnavailable(t *testing.T) {
	f, url := newFake(t)
	f.routes[statsPath] = func(r *http.Request, _ int) (int, http.Header, string) {
		return 403, nil, `{"detail": "You do not have permission to perform this action."}`
	}
	s := newSource(t, url, nil)
	ctx := context.Background()

	// No release known yet: nothing to ask the issues list for.
	ws := s.Windows(ctx, prod)
	if len(ws) != 1 || !strings.HasPrefix(ws[0].Unavailable, "counts unavailable: ") || !strings.Contains(ws[0].Unavailable, "403") || len(ws[0].Buckets) != 0 {
		t.Fatalf("windows = %+v", ws)
	}

	deployPath := "/api/0/organizations/acme/releases/shop@1.2.3/deploys/"
	f.routes[deployPath] = func(r *http.Request, _ int) (int, http.Header, string) { return 201, nil, deployBody }
	if err := s.MarkDeploy(ctx, prod, "1.2.3"); err != nil {
		t.Fatal(err)
	}
	var sent map[string]string
	_ = json.Unmarshal([]byte(f.bodies[deployPath][0]), &sent)
	if sent["environment"] != "production" {
		t.Errorf("deploy body = %s", f.bodies[deployPath][0])
	}

	f.routes[issuesPath] = func(r *http.Request, _ int) (int, http.Header, string) { return 200, nil, issuesPage1 }
	ws = s.Windows(ctx, prod)
	if len(ws) != 1 || ws[0].Release != "1.2.3" || ws[0].Unavailable != "" || ws[0].Total() != 150 || len(ws[0].Issues) != 1 {
		t.Fatalf("stepped-down windows = %+v", ws)
	}

	f.routes[issuesPath] = func(r *http.Request, _ int) (int, http.Header, string) {
		return 500, nil, `{"detail": "Internal Error"}`
	}
	ws = s.Windows(ctx, prod)
	if len(ws) != 1 || len(ws[0].Buckets) != 0 || !strings.HasPrefix(ws[0].Unavailable, "counts unavailable: ") ||
		!strings.Contains(ws[0].Unavailable, "403") || !strings.Contains(ws[0].Unavailable, "500") {
		t.Fatalf("windows = %+v", ws)
	}
	if strings.Contains(ws[0].Unavailable, token) {
		t.Error("the token leaked into the reason")
	}
}

func TestDeployAlreadyReportedAndTokenNeverInErrors(t *testing.T) {
	f, url := newFake(t)
	f.routes["/api/0/organizations/acme/releases/shop@2.0.0/deploys/"] = func(r *http.Request, _ int) (int, http.Header, string) {
		return 208, nil, deployBody
	}
	s := newSource(t, url, nil)
	if err := s.MarkDeploy(context.Background(), prod, "2.0.0"); err != nil {
		t.Errorf("208 Already Reported is success: %v", err)
	}
	err := s.MarkDeploy(context.Background(), prod, "9.9.9") // 404
	if err == nil || strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "404") {
		t.Errorf("err = %v", err)
	}
	bad, _ := NewSource(Config{BaseURL: url, Org: "acme", Token: "wrong-" + token})
	_, err = bad.Client().EventsStats(context.Background(), "production")
	if err == nil || strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "401") {
		t.Errorf("err = %v", err)
	}
}

func TestWatchCountsPollsAndPushes(t *testing.T) {
	f, url := newFake(t)
	f.routes[statsPath] = func(r *http.Request, _ int) (int, http.Header, string) { return 200, nil, topEventsBody }
	s := newSource(t, url, func(c *Config) { c.PollEvery = 20 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pushed := make(chan core.ErrorWindow, 100)
	done := make(chan error, 1)
	go func() { done <- s.WatchCounts(ctx, prod, func(w core.ErrorWindow) { pushed <- w }) }()
	deadline := time.After(10 * time.Second)
	for i := range 4 { // two polls, two releases each
		select {
		case w := <-pushed:
			if w.Total() == 0 {
				t.Errorf("push %d: %+v", i, w)
			}
		case <-deadline:
			t.Fatal("fewer than two polls pushed")
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("WatchCounts returned %v", err)
	}
	if f.count(statsPath) < 2 {
		t.Errorf("%d polls", f.count(statsPath))
	}
}

func TestDefaultPollIsOneMinute(t *testing.T) {
	s := newSource(t, "http://127.0.0.1:1", nil)
	if s.Client().cfg.PollEvery != time.Minute {
		t.Errorf("PollEvery = %v", s.Client().cfg.PollEvery)
	}
}
