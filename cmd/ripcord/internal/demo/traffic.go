package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// requestTimeout bounds one traffic request: a hung release must not hold
// its URL's slot for long.
const requestTimeout = 2 * time.Second

// checkoutShare is the share of traffic requests that check out; the rest
// load the front page.
const checkoutShare = 0.8

// Traffic sends perSecond requests a second to each URL (a base URL such
// as http://127.0.0.1:8080) until ctx ends, mostly GET /checkout and now
// and then GET /. At most one request per URL is in flight: while one is
// still running the next tick is skipped, so a slow target never builds a
// backlog. Failed requests are ignored, since targets restart during a
// rollout.
func Traffic(ctx context.Context, urls []string, perSecond int) error {
	if perSecond <= 0 {
		return fmt.Errorf("sending traffic: the rate must be at least 1 request a second, got %d", perSecond)
	}
	if len(urls) == 0 {
		return errors.New("sending traffic: no URL given")
	}
	for _, u := range urls {
		if err := checkBaseURL(u); err != nil {
			return fmt.Errorf("sending traffic: %w", err)
		}
	}
	client := &http.Client{Timeout: requestTimeout}
	var wg sync.WaitGroup
	for _, u := range urls {
		wg.Go(func() { driveURL(ctx, client, strings.TrimRight(u, "/"), perSecond) })
	}
	wg.Wait()
	return nil
}

// driveURL is one URL's ticker: a tick starts a request unless the
// previous one is still running.
func driveURL(ctx context.Context, client *http.Client, base string, perSecond int) {
	tick := time.NewTicker(time.Second / time.Duration(perSecond))
	defer tick.Stop()
	busy := make(chan struct{}, 1)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case busy <- struct{}{}:
		default:
			continue // the previous request is still running
		}
		inflight.Go(func() {
			defer func() { <-busy }()
			get(ctx, client, base+trafficPath())
		})
	}
}

func checkBaseURL(u string) error {
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
		return fmt.Errorf("%q is not an http:// URL", u)
	}
	return nil
}

func trafficPath() string {
	if rand.Float64() < checkoutShare {
		return "/checkout"
	}
	return "/"
}

// get requests target and reads the answer; every failure is ignored.
func get(ctx context.Context, client *http.Client, target string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
}
