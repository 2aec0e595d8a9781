package local

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"text/template"
	"time"
)

// checker probes a release: HTTP (any 2xx is healthy) or a TCP connect.
type checker struct {
	tmpl   *template.Template
	client *http.Client
}

func newChecker(health string) (*checker, error) {
	tmpl, err := template.New("health").Option("missingkey=error").Parse(health)
	if err != nil {
		return nil, fmt.Errorf("parse health template: %w", err)
	}
	c := &checker{tmpl: tmpl, client: &http.Client{
		// Never follow a redirect to somewhere else: the answer of this
		// release is what counts.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{DisableKeepAlives: true},
	}}
	if _, err := c.target(1); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *checker) target(port int) (*url.URL, error) {
	var b bytes.Buffer
	if err := c.tmpl.Execute(&b, struct{ Port int }{port}); err != nil {
		return nil, fmt.Errorf("expand health template: %w", err)
	}
	u, err := url.Parse(b.String())
	if err != nil {
		return nil, fmt.Errorf("health %q: %w", b.String(), err)
	}
	switch u.Scheme {
	case "http", "https", "tcp":
		return u, nil
	}
	return nil, fmt.Errorf("health %q: want http://, https:// or tcp://", b.String())
}

// probe checks once.
func (c *checker) probe(ctx context.Context, port int) error {
	u, err := c.target(port)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if u.Scheme == "tcp" {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return fmt.Errorf("tcp connect %s: %w", u.Host, err)
		}
		return conn.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	return nil
}

// wait retries the probe with a short, growing interval until it passes,
// the deadline passes, or the process exits (no point probing a corpse).
func (c *checker) wait(ctx context.Context, port int, timeout time.Duration, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	interval := 5 * time.Millisecond
	var last error
	for {
		if last = c.probe(ctx, port); last == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("process exited before it was healthy (last probe: %v)", last)
		case <-ctx.Done():
			return fmt.Errorf("not healthy within %s: %v", timeout, last)
		case <-time.After(interval):
		}
		interval = min(interval*2, 200*time.Millisecond)
	}
}
