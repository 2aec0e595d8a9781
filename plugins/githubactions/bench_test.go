package githubactions

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/githubactions/githubtest"
)

// benchScale runs the default intervals (poll 30s — 5m with a webhook —
// and poll_active 10s) this many times faster; what the benchmark reports
// is scaled back to real minutes and seconds.
const benchScale = 100

// BenchmarkRequestsPerMinute is what one watched workflow costs GitHub, in
// API requests per minute: idle (a green run, nothing changing) and with
// a run in flight (a step finishing every 20 s), each without and with
// the webhook receiver. In flight it also reports how long a finished
// step takes to reach WatchRuns — the console — from the moment GitHub
// reports it (with the webhook: from the delivery). One iteration is one
// (scaled) minute:
//
//	go test -run '^$' -bench RequestsPerMinute -benchtime 10x ./plugins/githubactions/
func BenchmarkRequestsPerMinute(b *testing.B) {
	for _, c := range []struct {
		name              string
		inFlight, webhook bool
	}{{"idle", false, false}, {"idle-webhook", false, true}, {"in-flight", true, false}, {"in-flight-webhook", true, true}} {
		b.Run(c.name, func(b *testing.B) { benchPolling(b, c.inFlight, c.webhook) })
	}
}

func benchPolling(b *testing.B, inFlight, webhook bool) {
	minute := time.Minute / benchScale
	gh := githubtest.New("octo-org", "octo-repo", "ci.yml")
	defer gh.Close()
	run := gh.Add(githubtest.Run{Status: "completed", Conclusion: "success", HeadSHA: sha, Branch: "main", CreatedAt: t0, StartedAt: t0, UpdatedAt: t0,
		Jobs: []githubtest.Job{{ID: 1, Name: "build", Status: "completed", Conclusion: "success", StartedAt: t0, CompletedAt: t0.Add(time.Second),
			Steps: []githubtest.Step{step("Compile", "completed", "success", 0, time.Second)}}}})
	if inFlight {
		run.Status, run.Conclusion = "in_progress", ""
		run.Jobs[0].Status, run.Jobs[0].Conclusion = "in_progress", ""
		run.Jobs[0].Steps = append(run.Jobs[0].Steps, step("Test 1", "in_progress", "", time.Second, 0))
	}
	cfg := Config{Service: "api", Repository: gh.Owner + "/" + gh.Repo, Workflow: gh.Workflow, Token: "ghp_bench",
		APIURL: gh.APIURL(), Poll: 30 * time.Second / benchScale, PollActive: 10 * time.Second / benchScale}
	if webhook {
		cfg.Poll = 5 * time.Minute / benchScale
		cfg.Webhook = Webhook{Listen: "127.0.0.1:0", Secret: "bench"}
	}
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()

	// seenAt[n] is when WatchRuns first showed n finished steps.
	var mu sync.Mutex
	seenAt := map[int]time.Time{}
	ctx, cancel := context.WithCancel(context.Background())
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		_ = s.WatchRuns(ctx, "api", func(r core.PipelineRun) {
			n := 0
			for _, st := range r.Stages {
				for _, x := range st.Steps {
					if x.State == core.RunSucceeded {
						n++
					}
				}
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
			gh.Update(func() {
				steps := run.Jobs[0].Steps
				last := &steps[len(steps)-1]
				at := time.Duration(finished) * 20 * time.Second
				last.Status, last.Conclusion, last.CompletedAt = "completed", "success", t0.Add(at)
				run.Jobs[0].Steps = append(steps, step(fmt.Sprintf("Test %d", finished+1), "in_progress", "", at, 0))
			})
			finished++
			finishedAt[finished] = time.Now()
			if webhook {
				if code, err := githubtest.Deliver("http://"+s.WebhookAddr()+"/github", "workflow_job", "bench", gh.RunEvent("in_progress", run)); err != nil || code != 204 {
					b.Fatalf("delivery: %d %v", code, err)
				}
			}
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
			b.Errorf("%d finished steps were never shown", k)
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
