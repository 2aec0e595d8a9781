package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/rollout"
	"github.com/ripcordhq/ripcord/plugins/kubernetes"
	"github.com/ripcordhq/ripcord/plugins/kubernetes/kubetest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
)

// An Argo Rollouts Rollout driven by Ripcord: its pause at 25% holds while
// Ripcord's analysis runs, a spike verdict aborts it, undo restores the
// stable release; a second release goes through both pauses to Healthy and
// is undone again.
func TestArgoRollouts(t *testing.T) {
	c := kubetest.Start(t, kubetest.Options{Argo: true})
	ns := "shop-argo"
	c.Namespace(ns)
	dyn := dynamic.NewForConfigOrDie(c.AdminConfig)
	createRollout(t, c, dyn, ns, "api", 4, "v1")
	p := startProvider(t, settings(c, c.AdminKubeconfig, "admin", ns, kubernetes.ModeArgo, "api"))
	ctx := context.Background()
	ro := func() *unstructured.Unstructured {
		obj, err := dyn.Resource(kubernetes.RolloutGVR).Namespace(ns).Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return obj
	}
	field := func(obj *unstructured.Unstructured, path ...string) any {
		v, _, _ := unstructured.NestedFieldNoCopy(obj.Object, path...)
		return v
	}

	ref := core.Ref{Service: "api", Env: "production"}
	st := []rollout.Step{
		{Kind: rollout.StepWeight, Weight: 25},
		{Kind: rollout.StepAnalysis, For: time.Hour},
		{Kind: rollout.StepWeight, Weight: 50},
		{Kind: rollout.StepPause},
		{Kind: rollout.StepWeight, Weight: 100},
	}
	// A spike verdict aborts (rollback: {auto: on-analysis-failure, action: abort}).
	w := newWorld(t, p, st, true, "v1", "v1", "v2", "v3")

	// v2 to 25%: Argo sets the weight and pauses; Ripcord's analysis holds it there.
	w.do(t, core.CmdPromote, "v2")
	w.wait(t, "the analysis step", func(ev core.Event) bool {
		return ev.Kind == core.EvDeployment && ev.Deployment.Step == 1 && ev.Deployment.Weight == 25
	})
	obj := ro()
	if idx := field(obj, "status", "currentStepIndex"); fmt.Sprint(idx) != "1" || fmt.Sprint(field(obj, "status", "phase")) != "Paused" {
		t.Fatalf("Argo at step %v phase %v; want paused at step index 1 (after setWeight 25)", idx, field(obj, "status", "phase"))
	}
	waitPods(t, c, ns, "api", map[string]int{image("v1"): 3, image("v2"): 1})
	w.waitTarget(t, func(ts core.TargetStatus) bool {
		return ts.Current == "v1" && ts.Candidate == "v2" && ts.Weight == 25 && ts.Healthy
	})

	// A spike: Ripcord aborts the Rollout; Argo returns everything to stable.
	w.eng.Publish(core.Event{Kind: core.EvVerdict, Ref: ref, Final: true, Verdict: &core.SpikeVerdict{Ref: ref, Candidate: "v2", Baseline: "v1", Kind: core.VerdictSpike,
		Evidence: core.Evidence{CandidateCount: 40, BaselineCount: 8, Share: 0.25, PValue: 1e-9}}})
	w.wait(t, "the abort", func(ev core.Event) bool {
		return ev.Kind == core.EvDeployment && ev.Deployment.State == core.DeployAborted
	})
	obj = ro()
	if field(obj, "status", "abort") != true {
		t.Fatalf("Rollout not aborted: status %v", field(obj, "status"))
	}
	if idx := fmt.Sprint(field(obj, "status", "currentStepIndex")); idx != "1" && idx != "0" {
		t.Fatalf("Argo went past the gated pause: currentStepIndex %s", idx)
	}
	waitPods(t, c, ns, "api", map[string]int{image("v1"): 4})
	// The automatic abort holds the environment's lock until it is done.
	eventually(t, "the automatic abort to release its lock", func() bool {
		_, held := w.eng.Snapshot().Locks[ref]
		return !held
	}, nil)

	// Undo: back on v1, the abort cleared, Healthy.
	w.do(t, core.CmdRollback, "")
	eventually(t, "the Rollout to be Healthy on v1", func() bool {
		obj = ro()
		return field(obj, "status", "phase") == "Healthy" && field(obj, "status", "abort") != true &&
			field(obj, "status", "stableRS") == field(obj, "status", "currentPodHash")
	}, func() string { return fmt.Sprint(field(obj, "status")) })
	if img := imageOfRollout(obj); img != image("v1") {
		t.Fatalf("after undo the Rollout runs %s, want %s", img, image("v1"))
	}
	waitPods(t, c, ns, "api", map[string]int{image("v1"): 4})

	// v3 through both of Argo's pauses to Healthy, each step Ripcord's.
	w.do(t, core.CmdPromote, "v3")
	w.wait(t, "the analysis step of v3", func(ev core.Event) bool {
		return ev.Kind == core.EvDeployment && ev.Deployment.Version == "v3" && ev.Deployment.Step == 1
	})
	w.do(t, core.CmdPromote, "") // analysis passed: on to 50%
	w.wait(t, "judgment at 50%", func(ev core.Event) bool {
		return ev.Kind == core.EvDeployment && ev.Deployment.Version == "v3" && ev.Deployment.State == core.DeployJudgment && ev.Deployment.Weight == 50
	})
	obj = ro()
	if idx := fmt.Sprint(field(obj, "status", "currentStepIndex")); idx != "3" {
		t.Fatalf("Argo at step index %s at 50%%, want 3 (the pause after setWeight 50)", idx)
	}
	waitPods(t, c, ns, "api", map[string]int{image("v1"): 2, image("v3"): 2})
	w.do(t, core.CmdPromote, "")
	w.wait(t, "v3 healthy", func(ev core.Event) bool {
		return ev.Kind == core.EvDeployment && ev.Deployment.Version == "v3" && ev.Deployment.State == core.DeployHealthy
	})
	obj = ro()
	if field(obj, "status", "phase") != "Healthy" || imageOfRollout(obj) != image("v3") {
		t.Fatalf("after full promotion: phase %v image %s", field(obj, "status", "phase"), imageOfRollout(obj))
	}
	waitPods(t, c, ns, "api", map[string]int{image("v3"): 4})

	// Undo v3: the last good release, v1, from the Rollout's ReplicaSets.
	w.do(t, core.CmdRollback, "")
	eventually(t, "the Rollout to be Healthy on v1 again", func() bool {
		obj = ro()
		return field(obj, "status", "phase") == "Healthy" && imageOfRollout(obj) == image("v1") &&
			field(obj, "status", "stableRS") == field(obj, "status", "currentPodHash")
	}, func() string { return fmt.Sprint(field(obj, "status")) })
	waitPods(t, c, ns, "api", map[string]int{image("v1"): 4})
	w.waitTarget(t, func(ts core.TargetStatus) bool { return ts.Current == "v1" && ts.Candidate == "" && ts.Healthy })
}

func imageOfRollout(obj *unstructured.Unstructured) string {
	cs, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
	if len(cs) == 0 {
		return ""
	}
	m, _ := cs[0].(map[string]any)
	s, _ := m["image"].(string)
	return s
}

// createRollout creates a canary Rollout (setWeight 25, pause, setWeight
// 50, pause: each pause waits for Ripcord) and its Service, and waits
// until its first revision is Healthy.
func createRollout(t *testing.T, c *kubetest.Cluster, dyn dynamic.Interface, ns, name string, replicas int64, version string) {
	t.Helper()
	ctx := context.Background()
	sel := map[string]string{"app": name}
	tmpl, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ptr(podTemplate(sel, version)))
	if err != nil {
		t.Fatal(err)
	}
	delete(tmpl, "creationTimestamp")
	if md, ok := tmpl["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1",
		"kind":       "Rollout",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"replicas":             replicas,
			"revisionHistoryLimit": int64(5),
			"selector":             map[string]any{"matchLabels": map[string]any{"app": name}},
			"template":             tmpl,
			"strategy": map[string]any{"canary": map[string]any{"steps": []any{
				map[string]any{"setWeight": int64(25)},
				map[string]any{"pause": map[string]any{}},
				map[string]any{"setWeight": int64(50)},
				map[string]any{"pause": map[string]any{}},
			}}},
		},
	}}
	if _, err := dyn.Resource(kubernetes.RolloutGVR).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: sel, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	if _, err := c.Admin.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var status any
	eventually(t, "the Rollout's first revision to be Healthy", func() bool {
		got, err := dyn.Resource(kubernetes.RolloutGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		status = got.Object["status"]
		phase, _, _ := unstructured.NestedString(got.Object, "status", "phase")
		return phase == "Healthy"
	}, func() string { return fmt.Sprint(status) })
	waitPods(t, c, ns, name, map[string]int{image(version): int(replicas)})
}

func ptr[T any](v T) *T { return &v }
