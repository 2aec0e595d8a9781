package cihttp

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// A 304 is answered with the remembered body and the remembered headers
// (pagination a 304 need not repeat), updated by the 304's own rate-limit
// headers; it is marked, and counted as a request.
func TestNotModifiedKeepsTheRememberedPageAndTheNewBudget(t *testing.T) {
	remaining := 100
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		remaining--
		w.Header().Set("RateLimit-Limit", "100")
		w.Header().Set("RateLimit-Remaining", strconv.Itoa(remaining))
		if r.Header.Get("If-None-Match") == `W/"1"` {
			w.WriteHeader(http.StatusNotModified) // no pagination headers
			return
		}
		w.Header().Set("ETag", `W/"1"`)
		w.Header().Set("X-Next-Page", "2")
		w.Header().Set("Link", `<http://x/?page=2>; rel="next"`)
		_, _ = io.WriteString(w, `[{"id":1}]`)
	}))
	defer srv.Close()
	c := NewConditional(nil, time.Now)
	client := &http.Client{Transport: c}
	get := func() (*http.Response, string) {
		t.Helper()
		resp, err := client.Get(srv.URL + "/pipelines?page=1")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	first, _ := get()
	if first.Header.Get(NotModifiedHeader) != "" {
		t.Fatal("a 200 is marked not modified")
	}
	resp, body := get()
	if resp.StatusCode != http.StatusOK || body != `[{"id":1}]` || resp.Header.Get(NotModifiedHeader) != "1" {
		t.Fatalf("304 answered %d %q marked %q, want the remembered page, marked", resp.StatusCode, body, resp.Header.Get(NotModifiedHeader))
	}
	if resp.Header.Get("X-Next-Page") != "2" || resp.Header.Get("Link") == "" {
		t.Errorf("the remembered page lost its pagination: %v", resp.Header)
	}
	if b := c.Budget(); !b.Known || b.Remaining != 98 || resp.Header.Get("RateLimit-Remaining") != "98" {
		t.Errorf("budget = %+v, header %q; want the 304's remaining 98", b, resp.Header.Get("RateLimit-Remaining"))
	}
	if c.Requests() != 2 {
		t.Errorf("requests = %d, want 2", c.Requests())
	}
}

// A refusal says how long to keep away: a used-up primary budget until
// its reset, a Retry-After in seconds or as a date, a 429 without one a
// minute; a 403 that is not a rate limit asks for no pause.
func TestRateLimitRefusalsSayHowLongToWait(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, c := range []struct {
		name   string
		status int
		header map[string]string
		want   time.Duration
	}{
		{"primary budget used up", 403, map[string]string{"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": strconv.FormatInt(now.Unix()+600, 10)}, 10 * time.Minute},
		{"retry-after seconds", 403, map[string]string{"Retry-After": "30", "X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4000"}, 30 * time.Second},
		{"retry-after date", 429, map[string]string{"Retry-After": now.Add(2 * time.Minute).UTC().Format(http.TimeFormat)}, 2 * time.Minute},
		{"429 without retry-after", 429, nil, time.Minute},
		{"403 that is no rate limit", 403, map[string]string{"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4000"}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range c.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(c.status)
			}))
			defer srv.Close()
			cond := NewConditional(nil, func() time.Time { return now })
			resp, err := (&http.Client{Transport: cond}).Get(srv.URL + "/runs")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := cond.Wait(); got != c.want {
				t.Fatalf("wait = %s, want %s (budget %+v)", got, c.want, cond.Budget())
			}
		})
	}
}
