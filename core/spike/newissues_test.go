package spike

import (
	"slices"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"pgregory.net/rapid"
)

func TestNewIssuesFiltersSortsAndMerges(t *testing.T) {
	early, late := t0, t0.Add(time.Minute)
	in := []core.ErrorIssue{
		{Fingerprint: "known", Title: "timeout", Count: 100},
		{Fingerprint: "b", Title: "nil map", Count: 5, FirstSeen: late},
		{Fingerprint: "a", Title: "cart is undefined", Count: 9},
		{Fingerprint: "b", Title: "nil map", Count: 6, FirstSeen: early},
		{Fingerprint: "", Title: "no fingerprint", Count: 50},
		{Fingerprint: "c", Title: "rare", Count: 1},
	}
	orig := slices.Clone(in)
	got := NewIssues(in, map[string]bool{"known": true}, 2)
	want := []core.ErrorIssue{
		{Fingerprint: "b", Title: "nil map", Count: 11, FirstSeen: early},
		{Fingerprint: "a", Title: "cart is undefined", Count: 9},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if !slices.Equal(in, orig) {
		t.Fatal("input modified")
	}
	if all := NewIssues(in, nil, 0); len(all) != 4 || all[0].Fingerprint != "known" {
		t.Fatalf("top 0 with no baseline should keep all 4 fingerprinted issues, got %+v", all)
	}
}

func TestNewIssuesProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		fp := rapid.SampledFrom([]string{"a", "b", "c", "d", "e"})
		n := rapid.IntRange(0, 20).Draw(t, "n")
		in := make([]core.ErrorIssue, n)
		for i := range in {
			in[i] = core.ErrorIssue{Fingerprint: fp.Draw(t, "fp"), Count: rapid.Int64Range(0, 50).Draw(t, "count")}
		}
		base := map[string]bool{}
		for _, f := range rapid.SliceOf(fp).Draw(t, "baseline") {
			base[f] = true
		}
		top := rapid.IntRange(0, 6).Draw(t, "top")
		got := NewIssues(in, base, top)
		if top > 0 && len(got) > top {
			t.Fatalf("%d issues, top %d", len(got), top)
		}
		seen := map[string]bool{}
		for i, is := range got {
			if base[is.Fingerprint] || seen[is.Fingerprint] {
				t.Fatalf("%q is in the baseline or repeated", is.Fingerprint)
			}
			seen[is.Fingerprint] = true
			var sum int64
			for _, x := range in {
				if x.Fingerprint == is.Fingerprint {
					sum += x.Count
				}
			}
			if is.Count != sum {
				t.Fatalf("%q count %d, want %d", is.Fingerprint, is.Count, sum)
			}
			if i > 0 && got[i-1].Count < is.Count {
				t.Fatalf("not sorted by count: %+v", got)
			}
		}
	})
}
