package spike

import (
	"cmp"
	"slices"

	"github.com/ripcordhq/ripcord/core"
)

// NewIssues returns the candidate's issues whose fingerprint was never seen
// in the baseline, most frequent first (ties by fingerprint, so the order
// is stable), at most top of them (top ≤ 0: all). Entries that share a
// fingerprint are merged: counts summed, earliest FirstSeen kept. Issues
// without a fingerprint cannot be matched and are left out. The input is
// not modified.
//
// A new fingerprint alone never calls SPIKE. Fingerprints are derived from
// stack frames and messages, so every release that moves code, renames a
// function or changes an error's wording produces "new" fingerprints for
// old errors; and a single new issue with a handful of events says nothing
// about whether errors got more frequent. Its events are already counted in
// the candidate's totals, so a new failure that matters moves the rate test
// on its own. New issues go in the evidence, where a person can read the
// title and judge.
func NewIssues(candidate []core.ErrorIssue, baselineFingerprints map[string]bool, top int) []core.ErrorIssue {
	var out []core.ErrorIssue
	index := map[string]int{}
	for _, is := range candidate {
		if is.Fingerprint == "" || baselineFingerprints[is.Fingerprint] {
			continue
		}
		if i, ok := index[is.Fingerprint]; ok {
			out[i].Count += is.Count
			if !is.FirstSeen.IsZero() && (out[i].FirstSeen.IsZero() || is.FirstSeen.Before(out[i].FirstSeen)) {
				out[i].FirstSeen = is.FirstSeen
			}
			continue
		}
		index[is.Fingerprint] = len(out)
		out = append(out, is)
	}
	slices.SortFunc(out, func(a, b core.ErrorIssue) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Fingerprint, b.Fingerprint)
	})
	if top > 0 && len(out) > top {
		out = out[:top]
	}
	return out
}
