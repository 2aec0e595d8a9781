package sentryingest

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/observe"
	"github.com/ripcordhq/ripcord/core/spike"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

// BenchmarkBurstToSpikeOnScreen measures, on the wall clock, how long an
// error burst takes to become a SPIKE verdict on an engine subscription
// (what the console draws from): real sentry-go clients send the
// candidate's and the baseline's errors over loopback to the ingest, which
// pushes windows to the observer, which judges them. A canary takes 25%
// of traffic; from the moment it is exposed the candidate errs k times as
// often per request as the baseline. The oracle is the sequential test
// that knows k, run on the very events sent, in the order and at the
// moments they were sent: the fastest any test could have called it.
//
//	go test -run XXX -bench BurstToSpikeOnScreen -benchtime 5x ./plugins/sentryingest/
//
// Metrics: s-to-spike and oracle-s are medians over the runs; test-s is the
// median of when the verdict's own test, fed each event the moment it was
// sent, crossed (so s-to-spike minus test-s is the pipeline's latency);
// late-s is the largest amount by which the verdict came later than 5 s in
// a run whose oracle called it within 5 s (0: never).
func BenchmarkBurstToSpikeOnScreen(b *testing.B) {
	for _, sc := range []struct {
		name    string
		perSec  float64 // the whole service's errors/s at the baseline's per-request rate
		k       float64
		timeout time.Duration
	}{
		{"10-per-s-k5", 10, 5, time.Minute},
		{"2-per-s-k10", 2, 10, time.Minute},
		{"1-per-s-k20", 1, 20, time.Minute},
	} {
		b.Run(sc.name, func(b *testing.B) {
			var took, oracle, test []float64
			late := 0.0
			seed := uint64(0)
			for b.Loop() {
				seed++
				t, o, m := burstOnce(b, sc.perSec, sc.k, sc.timeout, seed)
				took, oracle, test = append(took, t.Seconds()), append(oracle, o.Seconds()), append(test, m.Seconds())
				if o > 0 && o <= 5*time.Second && t > 5*time.Second {
					late = math.Max(late, (t - 5*time.Second).Seconds())
				}
			}
			slices.Sort(took)
			slices.Sort(oracle)
			slices.Sort(test)
			b.ReportMetric(took[len(took)/2], "s-to-spike")
			b.ReportMetric(oracle[len(oracle)/2], "oracle-s")
			b.ReportMetric(test[len(test)/2], "test-s")
			b.ReportMetric(late, "late-s")
		})
	}
}

// burstOnce runs one canary and returns when the verdict was SPIKE on the
// subscription and when the oracle could have called it, both from the
// first error sent.
func burstOnce(b *testing.B, perSec, k float64, timeout time.Duration, seed uint64) (took, oracle, test time.Duration) {
	b.Helper()
	ref := core.Ref{Service: "shop", Env: "production"}
	ing := newIngest(b, Config{Rate: 1e9, Burst: 1e9, Environments: []string{"production"}})
	addr := strings.TrimPrefix(serve(b, ing), "http://")
	st, err := sqlitestore.Open(context.Background(), filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	eng := core.NewEngine(core.EngineOptions{Project: "shop", Services: []string{"shop"}, Envs: []string{"production"}, Store: st})
	ob := observe.Start(context.Background(), observe.Options{Engine: eng, Errors: map[core.Ref]core.ErrorSource{ref: ing}})
	defer ob.Close()
	_, sub := eng.Subscribe()
	defer sub.Close()

	client := func(release string) *sentry.Client {
		c, err := sentry.NewClient(sentry.ClientOptions{Dsn: "http://publickey@" + addr + "/1", Environment: "production", Release: release})
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	cand, base := client("v2"), client("v1")
	defer cand.Close()
	defer base.Close()

	// The baseline was erring before the canary, and the observer has
	// seen the ingest's counts (as it has long before any real deploy).
	base.CaptureException(errors.New("db timeout"), nil, nil)
	seen, cancelSeen := context.WithTimeout(context.Background(), 30*time.Second)
	for {
		ev, err := sub.Next(seen)
		if err != nil {
			b.Fatalf("the observer never saw the baseline's error: %v", err)
		}
		if ev.Kind == core.EvErrors && ev.Errors.Release == "v1" {
			break
		}
	}
	cancelSeen()

	const w = 0.25
	eng.Publish(core.Event{Kind: core.EvDeployment, Ref: ref, Final: true, Deployment: &core.Deployment{
		ID: 1, Ref: ref, Version: "v2", From: "v1", State: core.DeployProgressing, Weight: 25,
		StartedAt: time.Now().Add(-time.Minute), ExposedAt: time.Now(),
	}})

	// Errors arrive as a Poisson process: the candidate at w·k·perSec,
	// the baseline at (1-w)·perSec.
	rng := rand.New(rand.NewPCG(seed, 3))
	rateC, rateB := w*k*perSec, (1-w)*perSec
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var mu sync.Mutex
	var start time.Time
	llr, oracleAt, testAt := 0.0, time.Duration(0), time.Duration(0)
	direct := spike.NewMonitor(ref, "v2", "v1", spike.Policy{}, time.Now())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			gap := time.Duration(rng.ExpFloat64() / (rateC + rateB) * float64(time.Second))
			select {
			case <-ctx.Done():
				return
			case <-time.After(gap):
			}
			isCand := rng.Float64() < rateC/(rateC+rateB)
			mu.Lock()
			if start.IsZero() {
				start = time.Now()
			}
			if isCand {
				llr += math.Log(k) - math.Log1p(w*(k-1))
			} else {
				llr -= math.Log1p(w * (k - 1))
			}
			if oracleAt == 0 && llr >= math.Log(100) {
				oracleAt = time.Since(start)
			}
			now := time.Now()
			one := spike.Bucket{Start: now.Truncate(spike.BucketWidth), Share: w, At: now}
			if isCand {
				one.Candidate = 1
			} else {
				one.Baseline = 1
			}
			direct.Observe(one)
			if _, ok := direct.SpikeAt(); ok && testAt == 0 {
				testAt = time.Since(start)
			}
			mu.Unlock()
			if isCand {
				cand.CaptureException(errors.New("cart is undefined"), nil, nil)
			} else {
				base.CaptureException(errors.New("db timeout"), nil, nil)
			}
		}
	}()
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			b.Fatalf("no SPIKE within %s: %v", timeout, err)
		}
		if ev.Kind == core.EvVerdict && ev.Verdict.Candidate == "v2" && ev.Verdict.Kind == core.VerdictSpike {
			mu.Lock()
			took = time.Since(start)
			mu.Unlock()
			break
		}
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if oracleAt == 0 {
		oracleAt = -1
	}
	return took, oracleAt, testAt
}
