package sentryapi

import (
	"context"
	"net/url"
	"sort"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// Issue is one entry of GET /api/0/organizations/{org}/issues/.
type Issue struct {
	ID        string    `json:"id"`
	ShortID   string    `json:"shortId"`
	Title     string    `json:"title"`
	Level     string    `json:"level"`
	Count     flexInt   `json:"count"`
	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`
	// Stats holds per-issue time series by period ("24h": hourly
	// [[epoch, count], ...]).
	Stats map[string][][2]float64 `json:"stats"`
}

// ListIssues runs an issue search in env (query as in Sentry's search
// bar, e.g. "firstRelease:shop@1.2.3"), following Link cursors up to
// MaxPages pages of 100.
func (c *Client) ListIssues(ctx context.Context, env, query string) ([]Issue, error) {
	q := url.Values{}
	q.Set("query", query)
	q.Set("environment", env)
	q.Set("statsPeriod", "24h")
	q.Set("sort", "freq")
	q.Set("limit", "100")
	for _, p := range c.cfg.Projects {
		q.Add("project", p)
	}
	var all []Issue
	for page := 0; page < c.cfg.MaxPages; page++ {
		var batch []Issue
		h, err := c.do(ctx, "GET", c.orgPath("issues"), q, nil, &batch)
		if err != nil {
			return nil, err
		}
		all = append(all, batch...)
		cur := nextCursor(h)
		if cur == "" {
			break
		}
		q.Set("cursor", cur)
	}
	return all, nil
}

// toErrorIssues maps Sentry issues found with firstRelease:V to core's.
func toErrorIssues(issues []Issue, firstRelease string) []core.ErrorIssue {
	out := make([]core.ErrorIssue, 0, len(issues))
	for _, is := range issues {
		fp := is.ShortID
		if fp == "" {
			fp = is.ID
		}
		out = append(out, core.ErrorIssue{
			Fingerprint: fp, Title: is.Title, Count: int64(is.Count),
			FirstSeen: is.FirstSeen, FirstRelease: firstRelease,
		})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Count > out[j].Count })
	return out
}

// issueBuckets sums the issues' hourly stats into one series: the coarse
// count the issues list can give when events-stats is not available.
func issueBuckets(issues []Issue) []core.ErrorBucket {
	sum := map[int64]int64{}
	for _, is := range issues {
		for _, p := range is.Stats["24h"] {
			sum[int64(p[0])] += int64(p[1])
		}
	}
	out := make([]core.ErrorBucket, 0, len(sum))
	for ts, n := range sum {
		out = append(out, core.ErrorBucket{Start: time.Unix(ts, 0).UTC(), Count: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// CreateDeploy records a deploy of release into env:
// POST /api/0/organizations/{org}/releases/{version}/deploys/. Sentry
// answers 201, or 208 when it already has it; both are success.
func (c *Client) CreateDeploy(ctx context.Context, release, env string) error {
	body := map[string]string{"environment": env, "name": "ripcord"}
	_, err := c.do(ctx, "POST", c.orgPath("releases", release, "deploys"), url.Values{}, body, nil)
	return err
}
