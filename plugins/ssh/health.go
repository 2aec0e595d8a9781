package ssh

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// health checks a host from the host itself: a URL is dialled through the
// SSH connection (a tunnel, so the service may listen on the host's
// loopback only), anything else is a command run on the host.
//
// A URL may name the host's environment ($NAME), so one setting serves
// hosts that listen on different addresses ("http://$LISTEN/healthz").
type health struct {
	url     string // http, https or tcp; "" for a command
	command string
}

func newHealth(s string) (*health, error) {
	for _, scheme := range []string{"http://", "https://", "tcp://"} {
		if strings.HasPrefix(s, scheme) {
			if _, err := url.Parse(os.Expand(s, func(string) string { return "1" })); err != nil {
				return nil, fmt.Errorf("health %q: %v", s, err)
			}
			return &health{url: s}, nil
		}
	}
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
		return nil, fmt.Errorf("health %q: a URL must be http://, https:// or tcp:// (or write a command)", s)
	}
	return &health{command: s}, nil
}

func (hc *health) String() string {
	if hc.url != "" {
		return hc.url
	}
	return hc.command
}

// probe checks once, within a few seconds.
func (hc *health) probe(ctx context.Context, c *conn, h Host, env map[string]string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if hc.url == "" {
		r, err := c.runScript(ctx, h.Root+"/"+currentName, env, hc.command, 5*time.Second)
		if err != nil {
			return fmt.Errorf("health command: %w", err)
		}
		if r.code != 0 {
			return fmt.Errorf("health command exited %d: %s", r.code, tail(r.stderr+"\n"+r.stdout))
		}
		return nil
	}
	u, err := url.Parse(os.Expand(hc.url, func(k string) string { return env[k] }))
	if err != nil {
		return fmt.Errorf("health %q: %w", hc.url, err)
	}
	if u.Scheme == "tcp" {
		conn, err := c.client.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return fmt.Errorf("tcp connect %s from the host: %w", u.Host, err)
		}
		return conn.Close()
	}
	client := &http.Client{
		// Never follow a redirect elsewhere: this host's answer counts.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				return c.client.DialContext(ctx, "tcp", addr)
			},
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s from the host: %w", u, err)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s from the host: status %d", u, resp.StatusCode)
	}
	return nil
}

// wait probes until the host is healthy or timeout passes, with a short,
// growing interval.
func (hc *health) wait(ctx context.Context, c *conn, h Host, env map[string]string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	interval := 20 * time.Millisecond
	var last error
	for {
		if last = hc.probe(ctx, c, h, env); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not healthy within %s: %v", timeout, last)
		case <-time.After(interval):
		}
		interval = min(interval*2, 500*time.Millisecond)
	}
}

// ParseHealth checks a health setting: a URL it can dial from the host,
// or a command. It returns what kind it is ("url" or "command").
func ParseHealth(s string) (string, error) {
	h, err := newHealth(s)
	if err != nil {
		return "", err
	}
	if h.url != "" {
		return "url", nil
	}
	return "command", nil
}
