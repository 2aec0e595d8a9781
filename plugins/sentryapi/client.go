package sentryapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config configures a client for one service.
type Config struct {
	// BaseURL is Sentry's address, default https://sentry.io; a
	// self-hosted Sentry's root URL otherwise.
	BaseURL string
	// Org is the organization slug.
	Org string
	// Token is an auth token with org:read event:read project:read
	// project:releases. It is sent as a Bearer token and never appears in
	// errors or logs.
	Token string
	// Projects are numeric project IDs to filter on; empty means all.
	Projects []string
	// Envs maps a Ripcord environment to Sentry's name for it; unmapped
	// environments are used as they are.
	Envs map[string]string
	// ReleasePrefix is prepended to Ripcord versions to get Sentry release
	// names (e.g. "shop@" when the SDK reports "shop@1.2.3") and stripped
	// from Sentry's names on the way back.
	ReleasePrefix string

	// PollEvery is WatchCounts' poll interval, default one minute: Sentry
	// itself evaluates alerts once a minute and its docs warn that polling
	// quickly trips rate limits. After a failed poll the next waits twice
	// as long, up to MaxBackoff.
	PollEvery  time.Duration
	MaxBackoff time.Duration // default 10 minutes
	// Window is how far back windows reach (and the first poll asks),
	// default one hour: the history a verdict learns the usual error rate
	// from.
	Window time.Duration
	// Overlap is how much of the time already polled each poll asks
	// again, default 2 minutes: Sentry stores events some time after they
	// happen, so recent buckets still grow.
	Overlap time.Duration
	// MaxPages bounds pagination, default 50 pages of 100.
	MaxPages int
	// MaxRateLimitWait is the longest a request waits for Sentry's rate
	// limit to reset before failing instead, default 2 minutes.
	MaxRateLimitWait time.Duration

	HTTPClient *http.Client
	Logf       func(format string, args ...any)
}

// Client talks to Sentry's Web API.
type Client struct {
	cfg  Config
	base *url.URL

	mu           sync.Mutex
	blockedUntil time.Time // from X-Sentry-Rate-Limit-* and 429s
}

// New checks cfg and applies defaults.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://sentry.io"
	}
	base, err := url.Parse(strings.TrimSuffix(cfg.BaseURL, "/"))
	if err != nil || base.Scheme == "" || base.Host == "" {
		return nil, fmt.Errorf("sentry api: base URL %q is not an absolute URL", cfg.BaseURL)
	}
	if cfg.Org == "" {
		return nil, errors.New("sentry api: org is required")
	}
	if cfg.Token == "" {
		return nil, errors.New("sentry api: token is required")
	}
	if cfg.PollEvery <= 0 {
		cfg.PollEvery = time.Minute
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Minute
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Hour
	}
	if cfg.Overlap <= 0 {
		cfg.Overlap = 2 * time.Minute
	}
	if cfg.MaxPages <= 0 {
		cfg.MaxPages = 50
	}
	if cfg.MaxRateLimitWait <= 0 {
		cfg.MaxRateLimitWait = 2 * time.Minute
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	return &Client{cfg: cfg, base: base}, nil
}

// APIError is a non-2xx answer. Detail is Sentry's {"detail": ...}.
type APIError struct {
	Endpoint string
	Status   int
	Detail   string
}

func (e *APIError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%s: HTTP %d: %s", e.Endpoint, e.Status, e.Detail)
	}
	return fmt.Sprintf("%s: HTTP %d", e.Endpoint, e.Status)
}

// orgPath builds /api/0/organizations/{org}/ + rest, escaping each part.
func (c *Client) orgPath(parts ...string) string {
	p := "/api/0/organizations/" + url.PathEscape(c.cfg.Org) + "/"
	for _, s := range parts {
		p += url.PathEscape(s) + "/"
	}
	return p
}

// do sends one request and decodes a 2xx JSON body into out (when not
// nil). It waits out a known rate limit first, and after a 429 waits the
// Retry-After and tries once more.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body any, out any) (http.Header, error) {
	endpoint := method + " " + path
	for attempt := 0; ; attempt++ {
		if err := c.waitRateLimit(ctx, endpoint); err != nil {
			return nil, err
		}
		u := *c.base
		u.Path = strings.TrimSuffix(c.base.Path, "/") + path
		u.RawQuery = q.Encode()
		var rd io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			if err != nil {
				return nil, fmt.Errorf("%s: encoding body: %w", endpoint, err)
			}
			rd = strings.NewReader(string(b))
		}
		req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", endpoint, err)
		}
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
		req.Header.Set("Accept", "application/json")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.cfg.HTTPClient.Do(req)
		if err != nil {
			// url.Error carries the URL, never the Authorization header.
			return nil, fmt.Errorf("%s: %w", endpoint, err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: reading response: %w", endpoint, err)
		}
		c.noteRateLimit(resp)
		if resp.StatusCode == http.StatusTooManyRequests && attempt == 0 {
			continue // waitRateLimit honours the Retry-After just noted
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return resp.Header, &APIError{Endpoint: endpoint, Status: resp.StatusCode, Detail: detail(data)}
		}
		if out != nil && len(data) > 0 {
			if err := json.Unmarshal(data, out); err != nil {
				return resp.Header, fmt.Errorf("%s: decoding response: %w", endpoint, err)
			}
		}
		return resp.Header, nil
	}
}

func detail(body []byte) string {
	var d struct {
		Detail any `json:"detail"`
	}
	if json.Unmarshal(body, &d) == nil && d.Detail != nil {
		s := fmt.Sprint(d.Detail)
		if len(s) > 200 {
			s = s[:200]
		}
		return s
	}
	return ""
}

// noteRateLimit reads Sentry's rate-limit headers: with no requests left
// in the window, nothing is sent until X-Sentry-Rate-Limit-Reset; a 429
// blocks for Retry-After (or until the reset, or 60 s, which is what
// Sentry's SDK guidance assumes without headers).
func (c *Client) noteRateLimit(resp *http.Response) {
	now := time.Now()
	var until time.Time
	reset := time.Time{}
	if s := resp.Header.Get("X-Sentry-Rate-Limit-Reset"); s != "" {
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			reset = time.Unix(0, int64(f*1e9))
		}
	}
	if resp.Header.Get("X-Sentry-Rate-Limit-Remaining") == "0" && !reset.IsZero() {
		until = reset
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		switch ra := resp.Header.Get("Retry-After"); {
		case ra != "":
			if secs, err := strconv.Atoi(strings.TrimSpace(ra)); err == nil {
				until = now.Add(time.Duration(secs) * time.Second)
			} else if t, err := http.ParseTime(ra); err == nil {
				until = t
			}
		case !reset.IsZero():
			until = reset
		default:
			until = now.Add(time.Minute)
		}
	}
	if until.After(now) {
		c.mu.Lock()
		if until.After(c.blockedUntil) {
			c.blockedUntil = until
		}
		c.mu.Unlock()
	}
}

// RateLimitedError says a request was not sent because Sentry's limit
// resets later than the client is willing to wait.
type RateLimitedError struct {
	Endpoint string
	Until    time.Time
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("%s: rate limited by Sentry until %s", e.Endpoint, e.Until.UTC().Format(time.RFC3339))
}

func (c *Client) waitRateLimit(ctx context.Context, endpoint string) error {
	c.mu.Lock()
	until := c.blockedUntil
	c.mu.Unlock()
	wait := time.Until(until)
	if wait <= 0 {
		return nil
	}
	if wait > c.cfg.MaxRateLimitWait {
		return &RateLimitedError{Endpoint: endpoint, Until: until}
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// nextCursor reads the Link header's rel="next" cursor, or "" when
// Sentry says there are no more results.
func nextCursor(h http.Header) string {
	for _, link := range h.Values("Link") {
		for part := range strings.SplitSeq(link, ",") {
			attrs := map[string]string{}
			for i, field := range strings.Split(part, ";") {
				if i == 0 {
					continue // the <url>
				}
				k, v, ok := strings.Cut(strings.TrimSpace(field), "=")
				if ok {
					attrs[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
				}
			}
			if attrs["rel"] == "next" && attrs["results"] == "true" && attrs["cursor"] != "" {
				return attrs["cursor"]
			}
		}
	}
	return ""
}
