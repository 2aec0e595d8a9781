// Package cihttp is the HTTP layer the CI pipeline sources share: conditional
// requests, the API budget the server states and the pauses it asks for,
// and the loop that polls within them.
package cihttp

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// NotModifiedHeader marks a response the transport answered from its
// cache after the server said 304 Not Modified: the caller may skip the
// work a change would need.
const NotModifiedHeader = "X-Ripcord-Not-Modified"

// Conditional is an http.RoundTripper that makes every GET a conditional
// request: it remembers each URL's ETag and body, sends If-None-Match, and
// turns a 304 into the remembered body (with the 304's own headers, so its
// rate-limit headers still count). GitHub and GitLab do not charge a 304
// against the primary rate limit, so an unchanged workflow costs nothing.
//
// It also keeps the API budget as the server last stated it and how long
// the server asked to be left alone (Retry-After, or a primary limit at
// zero until its reset), and counts the requests that reached the network.
type Conditional struct {
	next http.RoundTripper
	now  func() time.Time

	mu       sync.Mutex
	cache    map[string]cached
	budget   Budget
	requests int64
}

type cached struct {
	etag   string
	header http.Header // the 200's headers: pagination (Link, X-Next-Page) among them
	body   []byte
}

// Budget is the API rate limit as the server last reported it.
type Budget struct {
	Limit     int
	Remaining int
	Reset     time.Time
	// Until is when the server allows requests again after a rate limit
	// (primary at zero, or a secondary limit's Retry-After); zero when
	// none is in force.
	Until time.Time
	// Known is set once a response carried the rate-limit headers.
	Known bool
}

func NewConditional(next http.RoundTripper, now func() time.Time) *Conditional {
	if next == nil {
		next = http.DefaultTransport
	}
	return &Conditional{next: next, now: now, cache: map[string]cached{}}
}

func (c *Conditional) RoundTrip(req *http.Request) (*http.Response, error) {
	key := ""
	if req.Method == http.MethodGet && req.Header.Get("Range") == "" {
		key = req.URL.String()
		c.mu.Lock()
		entry, ok := c.cache[key]
		c.mu.Unlock()
		if ok && entry.etag != "" {
			req = req.Clone(req.Context())
			req.Header.Set("If-None-Match", entry.etag)
		}
	}
	c.mu.Lock()
	c.requests++
	c.mu.Unlock()
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	c.observe(resp)
	if key == "" {
		return resp, nil
	}
	switch {
	case resp.StatusCode == http.StatusNotModified:
		c.mu.Lock()
		entry, ok := c.cache[key]
		c.mu.Unlock()
		if !ok {
			return resp, nil
		}
		_ = resp.Body.Close()
		out := *resp
		out.StatusCode, out.Status = http.StatusOK, "200 OK (not modified)"
		// The remembered response's headers (a 304 need not repeat its
		// pagination), updated by the 304's own (the rate limit now).
		out.Header = entry.header.Clone()
		for k, v := range resp.Header {
			out.Header[k] = v
		}
		out.Header.Set(NotModifiedHeader, "1")
		out.Body = io.NopCloser(bytes.NewReader(entry.body))
		out.ContentLength = int64(len(entry.body))
		return &out, nil
	case resp.StatusCode == http.StatusOK && resp.Header.Get("ETag") != "":
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxCachedBody+1))
		_ = resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if len(body) <= maxCachedBody {
			c.mu.Lock()
			if _, ok := c.cache[key]; !ok && len(c.cache) >= maxCachedURLs {
				for k := range c.cache { // any one: the next poll refills it
					delete(c.cache, k)
					break
				}
			}
			c.cache[key] = cached{etag: resp.Header.Get("ETag"), header: resp.Header.Clone(), body: body}
			c.mu.Unlock()
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	return resp, nil
}

// maxCachedBody bounds what is remembered per URL: run and job lists are
// a few hundred kilobytes at most; logs are never cached (they are ranged
// or streamed).
const maxCachedBody = 4 << 20

// maxCachedURLs bounds how many URLs are remembered: a watched workflow
// polls its run list and the jobs of the runs in flight.
const maxCachedURLs = 256

// observe records the rate-limit headers GitHub (x-ratelimit-*) and GitLab
// (ratelimit-*) send, and a Retry-After on 403/429.
func (c *Conditional) observe(resp *http.Response) {
	h := resp.Header
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	limit, okL := headerInt(h, "X-RateLimit-Limit", "RateLimit-Limit")
	remaining, okR := headerInt(h, "X-RateLimit-Remaining", "RateLimit-Remaining")
	if okL && okR {
		c.budget.Limit, c.budget.Remaining, c.budget.Known = limit, remaining, true
		if reset, ok := headerInt(h, "X-RateLimit-Reset", "RateLimit-Reset"); ok {
			c.budget.Reset = time.Unix(int64(reset), 0)
		}
	}
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusTooManyRequests {
		return
	}
	switch {
	case h.Get("Retry-After") != "":
		if secs, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After"))); err == nil && secs >= 0 {
			c.budget.Until = now.Add(time.Duration(secs) * time.Second)
		} else if t, err := http.ParseTime(h.Get("Retry-After")); err == nil {
			c.budget.Until = t
		}
	case okR && remaining == 0 && !c.budget.Reset.IsZero():
		c.budget.Until = c.budget.Reset
	case resp.StatusCode == http.StatusTooManyRequests:
		// A secondary limit without Retry-After: GitHub's documentation
		// says to wait at least a minute.
		c.budget.Until = now.Add(time.Minute)
	}
}

func headerInt(h http.Header, names ...string) (int, bool) {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			i, err := strconv.Atoi(strings.TrimSpace(v))
			if err == nil {
				return i, true
			}
		}
	}
	return 0, false
}

// Budget returns the rate limit as last reported.
func (c *Conditional) Budget() Budget {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.budget
}

// Requests counts requests sent to the network (a 304 included).
func (c *Conditional) Requests() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests
}

// wait is how long to hold off before the next request, zero when the
// server has not asked for a pause.
func (c *Conditional) Wait() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := c.budget.Until.Sub(c.now()); d > 0 {
		return d
	}
	return 0
}
