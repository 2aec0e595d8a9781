package spike

import (
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// CompareWindows judges a release after a full rollout, when no traffic is
// left on the previous release to compare with at the same time. It
// compares the new release's error counts after the switch (after, one
// entry per bucket, oldest first) with the previous release's counts over
// the buckets just before the switch (before, oldest first, the last entry
// nearest the switch).
//
// It is the canary test with share 0.5. Pair the i-th bucket after the
// switch with the i-th bucket before it (after[i] with
// before[len(before)-1-i]): two windows of equal length. If the rate did
// not change, then conditional on the pair's total each error fell in the
// "after" bucket with probability 1/2 — exactly a canary bucket with share
// 0.5 where "after" plays the candidate. The pairs are fed in order as
// buckets, so the always-valid guarantee holds across repeated calls while
// after grows: each call replays a longer prefix of the same sequence, and
// the verdict (including a sticky SPIKE) depends only on that prefix.
// Mirroring around the switch, rather than aligning the windows' starts,
// is what keeps earlier pairs fixed as after grows; it also pairs the
// buckets closest in time. Only min(len(before), len(after)) pairs are used.
//
// The assumption, which the data cannot check: traffic and its mix are the
// same on both sides of the switch. This compares error counts, not errors
// per request, so a daily traffic ramp, a marketing push or a batch job
// starting right after the switch reads as a regression (and a traffic drop
// hides one). Keep windows short (a few tens of minutes) and treat SPIKE
// here as a reason to look, with the counts in the evidence. Elapsed is the
// length of one window (pairs × BucketWidth); At is left zero for the
// caller to stamp.
func CompareWindows(ref core.Ref, candidate, baseline string, before, after []int64, p Policy) core.SpikeVerdict {
	var origin time.Time
	m := NewMonitor(ref, candidate, baseline, p, origin)
	pairs := min(len(before), len(after))
	for i := range pairs {
		m.Observe(Bucket{
			Start:     origin.Add(time.Duration(i) * BucketWidth),
			Share:     0.5,
			Candidate: after[i],
			Baseline:  before[len(before)-1-i],
		})
	}
	v := m.Verdict(origin.Add(time.Duration(pairs) * BucketWidth))
	v.At = time.Time{}
	return v
}
