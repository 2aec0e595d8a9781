package sentryapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// flexInt decodes a count sent as a number or as a string: the issues
// list documents `count` as a number but real payloads carry "150".
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.Trim(bytes.TrimSpace(b), `"`)
	if len(b) == 0 || string(b) == "null" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("count %q is not a number", b)
	}
	*f = flexInt(n)
	return nil
}

// statsSeries is one EventsStats: {"data": [[ts, [{"count": N}]], ...]}.
type statsSeries struct {
	Data []statsPoint `json:"data"`
}

type statsPoint struct {
	Time  time.Time
	Count int64
}

func (p *statsPoint) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil || len(raw) != 2 {
		return fmt.Errorf("events-stats point is not [timestamp, values]")
	}
	var ts float64
	if err := json.Unmarshal(raw[0], &ts); err != nil {
		return fmt.Errorf("events-stats timestamp: %w", err)
	}
	var vals []struct {
		Count flexInt `json:"count"`
	}
	if err := json.Unmarshal(raw[1], &vals); err != nil {
		return fmt.Errorf("events-stats values: %w", err)
	}
	p.Time = time.Unix(int64(ts), 0).UTC()
	for _, v := range vals {
		p.Count += int64(v.Count)
	}
	return nil
}

// AllReleases names the series of a single-series events-stats answer,
// which counts every release together.
const AllReleases = ""

// parseEventsStats reads both shapes events-stats answers with: the
// single series {"data": [...], "start": ..} and the top-events map
// {"<release>": {"data": [...], "order": 0}, ...}. The single series is
// returned under AllReleases. An "Other" series is dropped.
func parseEventsStats(body []byte) (map[string][]core.ErrorBucket, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("events-stats: %w", err)
	}
	out := map[string][]core.ErrorBucket{}
	if d, ok := top["data"]; ok && len(bytes.TrimSpace(d)) > 0 && bytes.TrimSpace(d)[0] == '[' {
		var s statsSeries
		if err := json.Unmarshal(body, &s); err != nil {
			return nil, fmt.Errorf("events-stats: %w", err)
		}
		out[AllReleases] = buckets(s)
		return out, nil
	}
	for name, raw := range top {
		if name == "Other" {
			continue
		}
		var s statsSeries
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("events-stats series %q: %w", name, err)
		}
		out[name] = buckets(s)
	}
	return out, nil
}

func buckets(s statsSeries) []core.ErrorBucket {
	out := make([]core.ErrorBucket, len(s.Data))
	for i, p := range s.Data {
		out[i] = core.ErrorBucket{Start: p.Time, Count: p.Count}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// EventsStats returns per-release error counts of env per interval over
// the stats period, keyed by Sentry release name:
// GET /api/0/organizations/{org}/events-stats/ with topEvents and
// field=release.
func (c *Client) EventsStats(ctx context.Context, env string) (map[string][]core.ErrorBucket, error) {
	q := url.Values{}
	q.Set("dataset", "errors")
	q.Set("query", "event.type:error")
	q.Set("yAxis", "count()")
	q.Set("field", "release")
	q.Add("field", "count()")
	q.Set("sort", "-count()")
	q.Set("topEvents", strconv.Itoa(c.cfg.TopEvents))
	q.Set("interval", c.cfg.Interval)
	q.Set("statsPeriod", c.cfg.StatsPeriod)
	q.Set("excludeOther", "1")
	q.Set("partial", "1")
	q.Set("environment", env)
	for _, p := range c.cfg.Projects {
		q.Add("project", p)
	}
	var raw json.RawMessage
	if _, err := c.do(ctx, "GET", c.orgPath("events-stats"), q, nil, &raw); err != nil {
		return nil, err
	}
	return parseEventsStats(raw)
}
