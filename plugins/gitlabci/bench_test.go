package gitlabci

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/gitlabci/gitlabtest"
)

// benchScale runs the default intervals (poll 30s, poll_active 10s) this
// many times faster; what the benchmark reports is scaled back to real
// minutes and seconds.
const benchScale = 100

// BenchmarkRequestsPerMinute is what one watched project costs GitLab, in
// API requests per minute: idle (a green pipeline, nothing changing) and
// with a pipeline in flight (a job finishing every 20 s). In flight it
// also reports how long a finished job takes to reach WatchRuns — the
// console — from the moment GitLab reports it. One iteration is one
// (scaled) minute:
//
//	go test -run '^$' -bench RequestsPerMinute -benchtime 10x ./plugins/gitlabci/
func BenchmarkRequestsPerMinute(b *testing.B) {
	for _, inFlight := range []bool{false, true} {
		name := "idle"
		if inFlight {
			name = "in-flight"
		}
		b.Run(name, func(b *testing.B) { benchPolling(b, inFlight) })
	}
}

func benchPolling(b *testing.B, inFlight bool) {
	minute := time.Minute / benchScale
	gl := gitlabtest.New("shop/api")
	defer gl.Close()
	p := gl.Add(gitlabtest.Pipeline{Status: "success", Ref: "main", SHA: sha, CreatedAt: t0, UpdatedAt: t0, Jobs: []gitlabtest.Job{
		{ID: 1, Name: "build", Stage: "build", Status: "success", StartedAt: t0, FinishedAt: t0.Add(time.Second), Files: map[string][]byte{"dist/api": []byte("bin")}},
	}})
	if inFlight {
		p.Status = "running"
		p.Jobs = append(p.Jobs, gitlabtest.Job{ID: 2, Name: "test-1", Stage: "test", Status: "running", StartedAt: t0})
	}
	s, err := New(Config{Service: "api", Project: gl.Project, Token: "glpat-bench", APIURL: gl.APIURL(),
		ArtifactJob: "build", ArtifactPath: "dist/api", Poll: 30 * time.Second / benchScale, PollActive: 10 * time.Second / benchScale})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()

	// seenAt[n] is when WatchRuns first showed n finished jobs.
	var mu sync.Mutex
	seenAt := map[int]time.Time{}
	ctx, cancel := context.WithCancel(context.Background())
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		_ = s.WatchRuns(ctx, "api", func(r core.PipelineRun) {
			n := 0
			for _, st := range r.Stages {
				n += len(slices.DeleteFunc(slices.Clone(st.Steps), func(x core.Step) bool { return x.State != core.RunSucceeded }))
			}
			mu.Lock()
			if _, ok := seenAt[n]; !ok {
				seenAt[n] = time.Now()
			}
			mu.Unlock()
		})
	}()
	defer func() { cancel(); <-watching }()
	if _, err := s.Runs(ctx, "api", 1); err != nil {
		b.Fatal(err)
	}

	finishedAt := map[int]time.Time{}
	finished := 1
	b.ResetTimer()
	start, before := time.Now(), s.Requests()
	for range b.N {
		for range 3 { // 20 s apart
			<-time.After(minute / 3)
			if !inFlight {
				continue
			}
			gl.Update(func() {
				last := &p.Jobs[len(p.Jobs)-1]
				last.Status, last.FinishedAt = "success", t0.Add(time.Duration(finished)*20*time.Second)
				p.Jobs = append(p.Jobs, gitlabtest.Job{ID: last.ID + 1, Name: fmt.Sprintf("test-%d", last.ID), Stage: "test", Status: "running", StartedAt: last.FinishedAt})
			})
			finished++
			finishedAt[finished] = time.Now()
		}
	}
	elapsed, requests := time.Since(start), s.Requests()-before
	b.StopTimer()
	b.ReportMetric(float64(requests)/(elapsed.Minutes()*benchScale), "req/min")
	b.ReportMetric(0, "ns/op")
	if !inFlight {
		return
	}
	// The last change is seen within one fast poll; wait for it.
	deadline := time.Now().Add(time.Minute / benchScale)
	for {
		mu.Lock()
		_, ok := seenAt[finished]
		mu.Unlock()
		if ok || time.Now().After(deadline) {
			break
		}
		<-time.After(time.Millisecond)
	}
	var total, worst time.Duration
	n := 0
	mu.Lock()
	for k, at := range finishedAt {
		seen, ok := seenAt[k]
		if !ok {
			b.Errorf("%d finished jobs were never shown", k)
			continue
		}
		lag := seen.Sub(at) * benchScale
		total += lag
		worst = max(worst, lag)
		n++
	}
	mu.Unlock()
	if n > 0 {
		b.ReportMetric(total.Seconds()/float64(n), "s-to-show")
		b.ReportMetric(worst.Seconds(), "s-to-show-max")
	}
}
