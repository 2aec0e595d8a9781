package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/rollout"
	"github.com/ripcordhq/ripcord/plugins/kubernetes"
	"github.com/ripcordhq/ripcord/plugins/kubernetes/kubetest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The benchmarks share one control plane; run them with
//
//	go test ./plugins/kubernetes/e2e -run '^$' -bench . -benchtime 5x
func BenchmarkKubernetes(b *testing.B) {
	c := kubetest.Start(b, kubetest.Options{})
	b.Run("confirm-to-first-write", func(b *testing.B) { benchConfirmToFirstWrite(b, c) })
	b.Run("rollback-4-replicas-to-ready", func(b *testing.B) { benchRollback(b, c) })
	b.Run("watch-to-engine", func(b *testing.B) { benchWatch(b, c) })
}

// From the person's confirmation (Engine.Do of a promote) to the first
// write the API server accepted (the intent annotation on the stable
// Deployment), as the provider reports it.
func benchConfirmToFirstWrite(b *testing.B, c *kubetest.Cluster) {
	// Each run (b.N = 1, then the asked count) gets its own namespace.
	ns := fmt.Sprintf("bench-confirm-%d", b.N)
	c.Namespace(ns)
	createWorkload(b, c, ns, "api", 4, "v1", nil)
	p := startProvider(b, settings(c, c.AdminKubeconfig, "admin", ns, kubernetes.ModeDeployment, "api"))
	versions := []string{"v1"}
	for i := range b.N {
		versions = append(versions, fmt.Sprintf("v%d", i+2))
	}
	w := newBenchWorld(b, p, versions)
	var total time.Duration
	for i := range b.N {
		v := versions[i+1]
		start := time.Now()
		go func() {
			_, _ = w.eng.Do(context.Background(), core.Command{Kind: core.CmdPromote, Ref: w.ref, Version: v, Actor: core.Actor{Name: "bench"}})
		}()
		w.waitLog(b, "recorded operation")
		total += time.Since(start)
		w.waitEvent(b, func(ev core.Event) bool {
			return ev.Kind == core.EvDeployment && ev.Deployment.Version == v && ev.Deployment.State == core.DeployJudgment
		})
		if _, err := w.eng.Do(context.Background(), core.Command{Kind: core.CmdAbort, Ref: w.ref, Actor: core.Actor{Name: "bench"}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms-to-first-write")
}

// A rollback of a 4-replica Deployment, timed from the call until the
// provider reports the Deployment rolled out and Ready on kwok's pods.
func benchRollback(b *testing.B, c *kubetest.Cluster) {
	// Each run (b.N = 1, then the asked count) gets its own namespace.
	ns := fmt.Sprintf("bench-rollback-%d", b.N)
	c.Namespace(ns)
	createWorkload(b, c, ns, "api", 4, "v1", nil)
	p := startProvider(b, settings(c, c.AdminKubeconfig, "admin", ns, kubernetes.ModeDeployment, "api"))
	ctx := context.Background()
	ref := core.Ref{Service: "api", Env: "production"}
	var total time.Duration
	for i := range b.N {
		if err := p.target.Deploy(ctx, core.OpRequest{ID: fmt.Sprintf("bench-deploy-%d", i), Ref: ref}, release("v2"), 100, nil); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := p.target.Rollback(ctx, core.OpRequest{ID: fmt.Sprintf("bench-rollback-%d", i), Ref: ref}, "v1", nil); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		waitRolledOut(b, c, ns, "api", 4)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-rollback-to-ready")
}

// From an API write (a person scaling the Deployment with kubectl) to the
// changed status arriving in the engine, whose subscribers (the screen)
// draw it on their next frame.
func benchWatch(b *testing.B, c *kubetest.Cluster) {
	// Each run (b.N = 1, then the asked count) gets its own namespace.
	ns := fmt.Sprintf("bench-watch-%d", b.N)
	c.Namespace(ns)
	createWorkload(b, c, ns, "api", 4, "v1", nil)
	p := startProvider(b, settings(c, c.AdminKubeconfig, "admin", ns, kubernetes.ModeDeployment, "api"))
	w := newBenchWorld(b, p, []string{"v1"})
	ctx := context.Background()
	var total time.Duration
	for i := range b.N {
		replicas := 5 + i%2
		patch := fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, replicas)
		start := time.Now()
		if _, err := c.Admin.AppsV1().Deployments(ns).Patch(ctx, "api", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			b.Fatal(err)
		}
		w.waitEvent(b, func(ev core.Event) bool {
			return ev.Kind == core.EvTarget && ev.Target != nil && !ev.Target.Healthy
		})
		total += time.Since(start)
		w.waitEvent(b, func(ev core.Event) bool {
			return ev.Kind == core.EvTarget && ev.Target != nil && ev.Target.Healthy
		})
		waitRolledOut(b, c, ns, "api", int32(replicas))
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms-watch-to-engine")
}

type benchWorld struct {
	eng *core.Engine
	sub *core.Subscription
	ref core.Ref
}

func newBenchWorld(b *testing.B, p *provider, versions []string) *benchWorld {
	b.Helper()
	ctx := context.Background()
	st := openStore(b)
	ref := core.Ref{Service: "api", Env: "production"}
	for _, v := range versions {
		if err := st.PutRelease(ctx, release(v)); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := st.AddDeployment(ctx, core.Deployment{Ref: ref, Version: "v1", State: core.DeployHealthy, Weight: 100}); err != nil {
		b.Fatal(err)
	}
	eng := core.NewEngine(core.EngineOptions{Project: "shop", Services: []string{"api"}, Envs: []string{"production"}, Store: st})
	_, sub := eng.Subscribe()
	b.Cleanup(func() { sub.Close() })
	wctx, cancel := context.WithCancel(ctx)
	b.Cleanup(cancel)
	go func() {
		_ = p.target.WatchStatus(wctx, ref, func(ts core.TargetStatus) {
			ts.Ref = ref
			eng.Publish(core.Event{Kind: core.EvTarget, Ref: ref, Final: true, Target: &ts})
		})
	}()
	ctl := rollout.New(eng, rollout.Options{Envs: []rollout.Env{{Ref: ref, Target: p.target,
		Steps: []rollout.Step{{Kind: rollout.StepWeight, Weight: 25}, {Kind: rollout.StepPause}, {Kind: rollout.StepWeight, Weight: 100}}}}})
	b.Cleanup(func() { ctl.Close() })
	w := &benchWorld{eng: eng, sub: sub, ref: ref}
	w.waitEvent(b, func(ev core.Event) bool { return ev.Kind == core.EvTarget && ev.Target != nil && ev.Target.Healthy })
	return w
}

func (w *benchWorld) waitEvent(b *testing.B, pred func(core.Event) bool) core.Event {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		ev, err := w.sub.Next(ctx)
		if err != nil {
			b.Fatalf("waiting for an engine event: %v", err)
		}
		if pred(ev) {
			return ev
		}
	}
}

func (w *benchWorld) waitLog(b *testing.B, text string) {
	b.Helper()
	w.waitEvent(b, func(ev core.Event) bool {
		return ev.Kind == core.EvLog && ev.Log != nil && strings.Contains(ev.Log.Text, text)
	})
}
