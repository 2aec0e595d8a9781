package sentryapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

const token = "sntrys_test_token_do_not_log"

// fixture reads a response from testdata (see testdata/README.md for the
// documentation page each comes from).
func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// link is a Link header as Sentry's pagination docs show it.
func link(next string, more bool) http.Header {
	return http.Header{"Link": {fmt.Sprintf(`<https://sentry.io/api/0/organizations/acme/events/?&cursor=0:0:1>; rel="previous"; results="false"; cursor="0:0:1", `+
		`<https://sentry.io/api/0/organizations/acme/events/?&cursor=%s>; rel="next"; results="%t"; cursor="%s"`, next, more, next)}}
}

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
	eventsPath = "/api/0/organizations/acme/events/"
	issuesPath = "/api/0/organizations/acme/issues/"
)

var prod = core.Ref{Service: "shop", Env: "prod"}

// now is the source's clock in these tests: just after the fixtures'
// newest row.
var now = time.Date(2026, 11, 25, 12, 1, 5, 0, time.UTC)

func newSourceAt(t *testing.T, url string, mod func(*Config)) *Source {
	s := newSource(t, url, mod)
	s.now = func() time.Time { return now }
	return s
}

// twoPages serves the Discover query's rows in two pages.
func twoPages(t *testing.T) func(r *http.Request, n int) (int, http.Header, string) {
	return func(r *http.Request, n int) (int, http.Header, string) {
		if r.URL.Query().Get("cursor") == "" {
			return 200, link("0:100:0", true), fixture(t, "discover-release-timestamp-page1.json")
		}
		return 200, link("0:200:0", false), fixture(t, "discover-release-timestamp-page2.json")
	}
}

func byStart(w core.ErrorWindow) map[time.Time]int64 {
	m := map[time.Time]int64{}
	for _, b := range w.Buckets {
		if b.Count != 0 {
			m[b.Start] = b.Count
		}
	}
	return m
}

func at(sec int) time.Time { return time.Date(2026, 11, 25, 12, 0, sec, 0, time.UTC) }

// Errors per release and second from the Discover query fold into 10 s
// buckets, over both pages.
func TestCountsPerReleaseInTenSecondBuckets(t *testing.T) {
	f, url := newFake(t)
	f.routes[eventsPath] = twoPages(t)
	s := newSourceAt(t, url, nil)
	ws := s.Windows(context.Background(), prod)
	if len(ws) != 2 || ws[0].Release != "1.2.2" || ws[1].Release != "1.2.3" {
		t.Fatalf("windows = %+v, want 1.2.2 and 1.2.3", ws)
	}
	if got, want := byStart(ws[1]), map[time.Time]int64{at(30): 2, at(40): 1, at(50): 6}; !maps.Equal(got, want) {
		t.Errorf("1.2.3 buckets %v, want %v", got, want)
	}
	if got, want := byStart(ws[0]), map[time.Time]int64{at(30): 3, at(50): 1}; !maps.Equal(got, want) {
		t.Errorf("1.2.2 buckets %v, want %v", got, want)
	}
	if n := len(ws[1].Buckets); n != 361 || !ws[1].Buckets[n-1].Start.Equal(time.Date(2026, 11, 25, 12, 1, 0, 0, time.UTC)) {
		t.Errorf("%d dense buckets ending %v, want an hour of 10 s buckets up to now", n, ws[1].Buckets[n-1].Start)
	}
	if f.count(eventsPath) != 2 {
		t.Errorf("%d requests, want 2 pages", f.count(eventsPath))
	}
	q := f.calls[eventsPath][0].URL.Query()
	if q.Get("dataset") != "errors" || strings.Join(q["field"], ",") != "release,timestamp,count()" || q.Get("query") != "event.type:error" ||
		q.Get("environment") != "production" || q.Get("project") != "2" || q.Get("per_page") != "100" ||
		q.Get("start") != "2026-11-25T11:01:00Z" || q.Get("end") != "2026-11-25T12:01:05Z" {
		t.Errorf("query = %v", q)
	}
	if got := f.calls[eventsPath][1].URL.Query().Get("cursor"); got != "0:100:0" {
		t.Errorf("second page cursor = %q", got)
	}
}

// Later polls ask only for the time since the last one plus the overlap,
// and replace those buckets instead of adding to them.
func TestLaterPollsReplaceTheOverlap(t *testing.T) {
	f, url := newFake(t)
	f.routes[eventsPath] = twoPages(t)
	s := newSourceAt(t, url, nil)
	ctx := context.Background()
	s.Windows(ctx, prod)
	now = now.Add(time.Minute)
	defer func() { now = now.Add(-time.Minute) }()
	f.routes[eventsPath] = func(r *http.Request, n int) (int, http.Header, string) {
		return 200, link("0:100:0", false), fixture(t, "discover-release-timestamp-page1.json")
	}
	ws := s.Windows(ctx, prod)
	if q := f.calls[eventsPath][2].URL.Query(); q.Get("start") != "2026-11-25T11:59:00Z" {
		t.Errorf("second poll started at %s, want two minutes before the first ended, on a bucket", q.Get("start"))
	}
	// The rows of page 1 came again: the same counts, not doubled; page
	// 2's rows fell inside the asked range and are gone.
	if got, want := byStart(ws[1]), map[time.Time]int64{at(40): 1, at(50): 6}; !maps.Equal(got, want) {
		t.Errorf("1.2.3 buckets %v, want %v", got, want)
	}
}

// A query with more rows than the page limit would give short counts: it
// is reported unavailable, never as counts.
func TestTooManyPagesIsUnavailableNotShort(t *testing.T) {
	f, url := newFake(t)
	f.routes[eventsPath] = func(r *http.Request, n int) (int, http.Header, string) {
		return 200, link(fmt.Sprintf("0:%d:0", 100*n), true), fixture(t, "discover-release-timestamp-page1.json")
	}
	s := newSourceAt(t, url, func(c *Config) { c.MaxPages = 3 })
	ws := s.Windows(context.Background(), prod)
	if len(ws) != 1 || len(ws[0].Buckets) != 0 || !strings.Contains(ws[0].Unavailable, "counts would be incomplete") {
		t.Fatalf("windows = %+v", ws)
	}
	if f.count(eventsPath) != 3 {
		t.Errorf("%d requests, want the page limit of 3", f.count(eventsPath))
	}
}

// The documented example of the Discover table decodes; rows without the
// timestamp the client asks for are refused with a reason, not counted.
func TestDocumentedTableShape(t *testing.T) {
	f, url := newFake(t)
	f.routes[eventsPath] = func(r *http.Request, n int) (int, http.Header, string) {
		return 200, nil, fixture(t, "discover-events-docs-example.json")
	}
	s := newSourceAt(t, url, nil)
	_, err := s.Client().EventCounts(context.Background(), "production", now.Add(-time.Hour), now)
	if err == nil || !strings.Contains(err.Error(), "row timestamp") {
		t.Fatalf("err = %v, want the missing timestamp named", err)
	}
}

func TestIssuesFollowLinkCursor(t *testing.T) {
	f, url := newFake(t)
	page := fixture(t, "issues-list.json")
	f.routes[issuesPath] = func(r *http.Request, n int) (int, http.Header, string) {
		h := http.Header{}
		if n == 1 {
			if r.URL.Query().Get("cursor") != "" {
				t.Errorf("first page sent a cursor")
			}
			h.Set("Link", `<https://sentry.io/api/0/organizations/acme/issues/?&cursor=0:0:1>; rel="previous"; results="false"; cursor="0:0:1", `+
				`<https://sentry.io/api/0/organizations/acme/issues/?&cursor=0:100:0>; rel="next"; results="true"; cursor="0:100:0"`)
			return 200, h, page
		}
		if got := r.URL.Query().Get("cursor"); got != "0:100:0" {
			t.Errorf("second page cursor = %q", got)
		}
		h.Set("Link", `<https://sentry.io/api/0/organizations/acme/issues/?&cursor=0:0:1>; rel="previous"; results="true"; cursor="0:0:1", `+
			`<https://sentry.io/api/0/organizations/acme/issues/?&cursor=0:200:0>; rel="next"; results="false"; cursor="0:200:0"`)
		// The second page: the documented issue again, as another issue
		// with its count as a string, as real payloads send it.
		return 200, h, strings.Replace(strings.Replace(page, `"count": 150`, `"count": "7"`, 1), `"shortId": "PUMP-STATION-1"`, `"shortId": "PUMP-STATION-2"`, 1)
	}
	s := newSource(t, url, nil)
	issues, err := s.Issues(context.Background(), prod, "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if f.count(issuesPath) != 2 {
		t.Errorf("%d requests, want 2 pages", f.count(issuesPath))
	}
	if len(issues) != 2 || issues[0].Fingerprint != "PUMP-STATION-1" || issues[0].Count != 150 || issues[1].Count != 7 ||
		issues[0].FirstRelease != "1.2.3" || issues[0].Title != "This is an example Python exception" {
		t.Errorf("issues = %+v", issues)
	}
	if q := f.calls[issuesPath][0].URL.Query(); q.Get("query") != "firstRelease:shop@1.2.3" || q.Get("environment") != "production" {
		t.Errorf("query = %v", q)
	}
}

// A 429 is waited out for Retry-After, then retried once.
func TestRetryAfter429(t *testing.T) {
	f, url := newFake(t)
	f.routes[eventsPath] = func(r *http.Request, n int) (int, http.Header, string) {
		if n == 1 {
			return 429, http.Header{"Retry-After": {"1"}}, fixture(t, "rate-limited-429.json")
		}
		return 200, nil, fixture(t, "discover-release-timestamp-page2.json")
	}
	s := newSourceAt(t, url, nil)
	if _, err := s.Client().EventCounts(context.Background(), "production", now.Add(-time.Hour), now); err != nil {
		t.Fatal(err)
	}
	ts := f.times[eventsPath]
	if len(ts) != 2 {
		t.Fatalf("%d requests, want 2", len(ts))
	}
	if gap := ts[1].Sub(ts[0]); gap < time.Second {
		t.Errorf("retried after %v, before Retry-After: 1", gap)
	}
}

// A second 429 in a row is an error saying so, not counts.
func TestRepeated429IsAnError(t *testing.T) {
	f, url := newFake(t)
	f.routes[eventsPath] = func(r *http.Request, n int) (int, http.Header, string) {
		return 429, http.Header{"Retry-After": {"0"}}, fixture(t, "rate-limited-429.json")
	}
	s := newSourceAt(t, url, nil)
	ws := s.Windows(context.Background(), prod)
	if len(ws) != 1 || !strings.Contains(ws[0].Unavailable, "429") || !strings.Contains(ws[0].Unavailable, "too frequently") {
		t.Fatalf("windows = %+v", ws)
	}
}

// With no requests left in the window, nothing is sent until the reset;
// a reset later than MaxRateLimitWait fails without a request.
func TestRateLimitRemainingZero(t *testing.T) {
	f, url := newFake(t)
	var reset time.Time
	f.routes[eventsPath] = func(r *http.Request, n int) (int, http.Header, string) {
		reset = time.Now().Add(1500 * time.Millisecond).Truncate(time.Second).Add(time.Second)
		h := http.Header{
			"X-Sentry-Rate-Limit-Limit":     {"50"},
			"X-Sentry-Rate-Limit-Remaining": {"0"},
			"X-Sentry-Rate-Limit-Reset":     {strconv.FormatInt(reset.Unix(), 10)},
		}
		return 200, h, fixture(t, "discover-release-timestamp-page2.json")
	}
	s := newSourceAt(t, url, nil)
	ctx := context.Background()
	count := func(s *Source) error {
		_, err := s.Client().EventCounts(ctx, "production", now.Add(-time.Hour), now)
		return err
	}
	if err := count(s); err != nil {
		t.Fatal(err)
	}
	first := reset
	if err := count(s); err != nil {
		t.Fatal(err)
	}
	if at := f.times[eventsPath][1]; at.Before(first) {
		t.Errorf("second request at %v, before the reset %v", at, first)
	}

	impatient := newSourceAt(t, url, func(c *Config) { c.MaxRateLimitWait = 100 * time.Millisecond })
	if err := count(impatient); err != nil {
		t.Fatal(err)
	}
	before := f.count(eventsPath)
	err := count(impatient)
	var rl *RateLimitedError
	if !errors.As(err, &rl) {
		t.Fatalf("err = %v, want RateLimitedError", err)
	}
	if f.count(eventsPath) != before {
		t.Error("a request was sent while rate limited")
	}
}

func TestStepDownToIssuesThenUnavailable(t *testing.T) {
	f, url := newFake(t)
	f.routes[eventsPath] = func(r *http.Request, _ int) (int, http.Header, string) {
		return 403, nil, `{"detail": "You do not have permission to perform this action."}`
	}
	s := newSourceAt(t, url, nil)
	ctx := context.Background()

	// No release known yet: nothing to ask the issues list for.
	ws := s.Windows(ctx, prod)
	if len(ws) != 1 || !strings.HasPrefix(ws[0].Unavailable, "counts unavailable: ") || !strings.Contains(ws[0].Unavailable, "403") || len(ws[0].Buckets) != 0 {
		t.Fatalf("windows = %+v", ws)
	}

	deployPath := "/api/0/organizations/acme/releases/shop@1.2.3/deploys/"
	f.routes[deployPath] = func(r *http.Request, _ int) (int, http.Header, string) {
		return 201, nil, fixture(t, "deploy-created.json")
	}
	if err := s.MarkDeploy(ctx, prod, "1.2.3"); err != nil {
		t.Fatal(err)
	}
	var sent map[string]string
	_ = json.Unmarshal([]byte(f.bodies[deployPath][0]), &sent)
	if sent["environment"] != "production" {
		t.Errorf("deploy body = %s", f.bodies[deployPath][0])
	}

	f.routes[issuesPath] = func(r *http.Request, _ int) (int, http.Header, string) {
		return 200, nil, fixture(t, "issues-list.json")
	}
	ws = s.Windows(ctx, prod)
	if len(ws) != 1 || ws[0].Release != "1.2.3" || ws[0].Unavailable != "" || ws[0].Total() != 15567 || len(ws[0].Issues) != 1 {
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
		return 208, nil, ""
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
	_, err = bad.Client().EventCounts(context.Background(), "production", now.Add(-time.Hour), now)
	if err == nil || strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "401") {
		t.Errorf("err = %v", err)
	}
}

func TestWatchCountsPollsAndPushes(t *testing.T) {
	f, url := newFake(t)
	f.routes[eventsPath] = twoPages(t)
	s := newSourceAt(t, url, func(c *Config) { c.PollEvery = 20 * time.Millisecond })
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
}

// Polls that cannot count back off: each waits twice as long as the last.
func TestFailingPollsBackOff(t *testing.T) {
	f, url := newFake(t)
	f.routes[eventsPath] = func(r *http.Request, _ int) (int, http.Header, string) {
		return 503, nil, `{"detail": "Service unavailable"}`
	}
	s := newSourceAt(t, url, func(c *Config) { c.PollEvery = 50 * time.Millisecond; c.MaxBackoff = 400 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.WatchCounts(ctx, prod, func(core.ErrorWindow) {}) }()
	waitFor := time.Now().Add(10 * time.Second)
	for f.count(eventsPath) < 5 && time.Now().Before(waitFor) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	f.mu.Lock()
	ts := slices.Clone(f.times[eventsPath])
	f.mu.Unlock()
	if len(ts) < 5 {
		t.Fatalf("%d polls", len(ts))
	}
	// 100, 200, 400, 400 ms after the first three failures.
	for i, want := range []time.Duration{100, 200, 400, 400} {
		if gap := ts[i+1].Sub(ts[i]); gap < want*time.Millisecond {
			t.Errorf("poll %d came %v after the one before, want at least %v", i+2, gap, want*time.Millisecond)
		}
	}
}

func TestDefaultPollIsOneMinute(t *testing.T) {
	s := newSource(t, "http://127.0.0.1:1", nil)
	if s.Client().cfg.PollEvery != time.Minute {
		t.Errorf("PollEvery = %v", s.Client().cfg.PollEvery)
	}
}
