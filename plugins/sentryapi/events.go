package sentryapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// BucketWidth is the width of the counts the source reports: the
// verdict's own 10 s.
const BucketWidth = 10 * time.Second

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

// eventRow is one row of the Discover query the source runs: errors of one
// release at one second, and how many.
type eventRow struct {
	Release   string  `json:"release"`
	Timestamp string  `json:"timestamp"`
	Count     flexInt `json:"count()"`
}

// eventsPage is the table format of GET /organizations/{org}/events/.
type eventsPage struct {
	Data []eventRow `json:"data"`
}

// ErrTruncated says a query had more rows than MaxPages pages: its
// counts would be short, and short counts are never reported as counts.
var ErrTruncated = errors.New("more rows than the page limit: counts would be incomplete")

// Counts maps a Sentry release name to its error counts by bucket start
// (unix seconds, a multiple of 10).
type Counts map[string]map[int64]int64

func bucketOf(t time.Time) int64 {
	s := t.Unix()
	w := int64(BucketWidth / time.Second)
	return s - ((s%w)+w)%w
}

// EventCounts counts env's error events per release in 10 s buckets from
// start to end, with the documented Discover query
// GET /api/0/organizations/{org}/events/ (table format): the fields
// release, timestamp and count() group the errors by release and second,
// so a page of 100 rows covers up to 100 seconds of a release however
// many errors they had. Link cursors are followed while Sentry says there
// are more results, up to MaxPages; beyond that it fails with
// ErrTruncated rather than report a short count.
func (c *Client) EventCounts(ctx context.Context, env string, start, end time.Time) (Counts, error) {
	q := url.Values{}
	q.Set("dataset", "errors")
	q.Add("field", "release")
	q.Add("field", "timestamp")
	q.Add("field", "count()")
	q.Set("query", "event.type:error")
	q.Set("sort", "-timestamp")
	q.Set("per_page", "100")
	q.Set("start", start.UTC().Format(time.RFC3339))
	q.Set("end", end.UTC().Format(time.RFC3339))
	if env != "" {
		q.Set("environment", env)
	}
	for _, p := range c.cfg.Projects {
		q.Add("project", p)
	}
	out := Counts{}
	for page := 0; ; page++ {
		if page == c.cfg.MaxPages {
			return nil, fmt.Errorf("GET %s: %w (%d pages of 100)", c.orgPath("events"), ErrTruncated, c.cfg.MaxPages)
		}
		var body eventsPage
		h, err := c.do(ctx, "GET", c.orgPath("events"), q, nil, &body)
		if err != nil {
			return nil, err
		}
		for _, r := range body.Data {
			at, err := time.Parse(time.RFC3339, r.Timestamp)
			if err != nil {
				return nil, fmt.Errorf("GET %s: row timestamp %q: %w", c.orgPath("events"), r.Timestamp, err)
			}
			m := out[r.Release]
			if m == nil {
				m = map[int64]int64{}
				out[r.Release] = m
			}
			m[bucketOf(at)] += int64(r.Count)
		}
		cur := nextCursor(h)
		if cur == "" {
			return out, nil
		}
		q.Set("cursor", cur)
	}
}
