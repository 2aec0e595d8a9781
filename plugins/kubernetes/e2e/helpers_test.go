// Package e2e drives the ripcord-provider-kubernetes binary, through the
// real plugin host and rollout engine, against a real control plane
// (kubetest): etcd, kube-apiserver with RBAC, kube-controller-manager,
// kube-scheduler and kwok, plus the Argo Rollouts controller.
package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/rollout"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
	"github.com/ripcordhq/ripcord/plugins/host"
	"github.com/ripcordhq/ripcord/plugins/kubernetes/kubetest"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// repo is the image repository the tests deploy; kwok runs no images, so
// any well-formed reference works.
const repo = "registry.example.test/shop/api"

func digest(version string) string {
	sum := sha256.Sum256([]byte(version))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func image(version string) string { return repo + "@" + digest(version) }

func release(version string) core.Release {
	return core.Release{Service: "api", Version: version, Branch: "main", ArtifactDigest: digest(version)}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// providerBinary builds ripcord-provider-kubernetes once per test run.
func providerBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "ripcord-k8s-e2e-")
		if buildErr != nil {
			return
		}
		root, err := kubetest.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(binDir, "ripcord-provider-kubernetes")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/ripcord-provider-kubernetes")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building the provider: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// provider is the plugin process serving one environment, through the
// real host (lock file, AutoMTLS, environment allowlist).
type provider struct {
	host   *host.Host
	target core.Target
}

func startProvider(t testing.TB, settings map[string]any) *provider {
	t.Helper()
	bin := providerBinary(t)
	dir := t.TempDir()
	lock := filepath.Join(dir, host.LockFileName)
	spec := host.PluginSpec{Name: "kubernetes", Path: bin}
	if err := host.WriteLock(lock, []host.PluginSpec{spec}); err != nil {
		t.Fatal(err)
	}
	h, err := host.New(host.Options{Plugins: []host.PluginSpec{spec}, Workdir: dir, LockFile: lock, Log: func(l core.LogLine) {
		if testing.Verbose() {
			t.Logf("plugin: %s", l.Text)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Configure(ctx, "kubernetes", settings, nil); err != nil {
		t.Fatal(err)
	}
	tgt, err := h.Target("kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	return &provider{host: h, target: tgt}
}

// pid is the plugin process's pid.
func (p *provider) pid(t testing.TB) int {
	t.Helper()
	infos, err := p.host.List(context.Background())
	if err != nil || len(infos) != 1 || infos[0].PID == 0 {
		t.Fatalf("plugin pid: %v %+v", err, infos)
	}
	return infos[0].PID
}

func settings(c *kubetest.Cluster, kubeconfig, context, namespace, mode, workload string) map[string]any {
	return map[string]any{
		"kubeconfig": kubeconfig, "context": context, "namespace": namespace,
		"mode": mode, "workload": workload, "image": repo, "timeout": "90s",
	}
}

// createWorkload creates a Deployment NAME (replicas pods running
// version) and a Service selecting app=NAME, and waits until it is
// rolled out.
func createWorkload(t testing.TB, c *kubetest.Cluster, ns, name string, replicas int32, version string, mutate func(*appsv1.Deployment)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sel := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: sel},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: podTemplate(sel, version),
		},
	}
	if mutate != nil {
		mutate(d)
	}
	if _, err := c.Admin.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: sel, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	if _, err := c.Admin.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRolledOut(t, c, ns, name, replicas)
}

func podTemplate(labels map[string]string, version string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"ripcord.dev/version": version}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "api", Image: image(version)}},
			// kwok's fake node; no real kubelet runs.
			NodeSelector: map[string]string{"type": "kwok"},
		},
	}
}

// rolledOut is `kubectl rollout status` for a Deployment, read
// independently of the provider.
func rolledOut(d *appsv1.Deployment, replicas int32) (bool, string) {
	switch {
	case d.Status.ObservedGeneration < d.Generation:
		return false, "generation not observed"
	case d.Spec.Replicas == nil || *d.Spec.Replicas != replicas:
		return false, fmt.Sprintf("spec.replicas %v, want %d", d.Spec.Replicas, replicas)
	case d.Status.UpdatedReplicas != replicas || d.Status.Replicas != replicas || d.Status.AvailableReplicas != replicas:
		return false, fmt.Sprintf("updated %d, total %d, available %d of %d", d.Status.UpdatedReplicas, d.Status.Replicas, d.Status.AvailableReplicas, replicas)
	}
	return true, ""
}

// waitRolledOut waits (on the API, with a deadline) until a Deployment
// has replicas pods, all updated and available.
func waitRolledOut(t testing.TB, c *kubetest.Cluster, ns, name string, replicas int32) *appsv1.Deployment {
	t.Helper()
	var last string
	var got *appsv1.Deployment
	eventually(t, fmt.Sprintf("deployment %s/%s rolled out with %d replicas", ns, name, replicas), func() bool {
		d, err := c.Admin.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false
		}
		ok, why := rolledOut(d, replicas)
		last, got = why, d
		return ok
	}, func() string { return last })
	return got
}

// eventually polls cond every 50 ms for up to a minute: a wait on a
// condition with a deadline.
func eventually(t testing.TB, what string, cond func() bool, why func() string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			msg := ""
			if why != nil {
				msg = why()
			}
			t.Fatalf("timed out waiting for %s: %s", what, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readyPods counts the Ready pods a Service's selector reaches, by image.
func readyPods(t testing.TB, c *kubetest.Cluster, ns, service string) map[string]int {
	t.Helper()
	ctx := context.Background()
	svc, err := c.Admin.CoreV1().Services(ns).Get(ctx, service, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods, err := c.Admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(svc.Spec.Selector).String()})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				out[p.Spec.Containers[0].Image]++
			}
		}
	}
	return out
}

// waitPods waits until the Service reaches exactly the Ready pods wanted
// (image → count).
func waitPods(t testing.TB, c *kubetest.Cluster, ns, service string, want map[string]int) {
	t.Helper()
	var got map[string]int
	eventually(t, fmt.Sprintf("service %s/%s to reach %v", ns, service, want), func() bool {
		got = readyPods(t, c, ns, service)
		if len(got) != len(want) {
			return false
		}
		for k, v := range want {
			if got[k] != v {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprint(got) })
}

// world is an engine and rollout controller around one provider, the way
// `ripcord serve` wires them.
type world struct {
	eng  *core.Engine
	ctl  *rollout.Controller
	sub  *core.Subscription
	ref  core.Ref
	logs chan string
}

func newWorld(t *testing.T, p *provider, steps []rollout.Step, autoAbort bool, stable string, releases ...string) *world {
	t.Helper()
	ctx := context.Background()
	st := openStore(t)
	ref := core.Ref{Service: "api", Env: "production"}
	for _, v := range releases {
		if err := st.PutRelease(ctx, release(v)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.AddDeployment(ctx, core.Deployment{Ref: ref, Version: stable, State: core.DeployHealthy, Weight: 100}); err != nil {
		t.Fatal(err)
	}
	eng := core.NewEngine(core.EngineOptions{Project: "shop", Services: []string{"api"}, Envs: []string{"production"}, Store: st})
	wctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	// The target's watch feeds the engine, as core/observe does.
	go func() {
		_ = p.target.WatchStatus(wctx, ref, func(ts core.TargetStatus) {
			ts.Ref = ref
			eng.Publish(core.Event{Kind: core.EvTarget, Ref: ref, Final: true, Target: &ts})
		})
	}()
	ctl := rollout.New(eng, rollout.Options{Envs: []rollout.Env{{Ref: ref, Target: p.target, Steps: steps, AutoRollback: autoAbort, AutoAbort: autoAbort}}})
	t.Cleanup(func() { ctl.Close() })
	_, sub := eng.Subscribe()
	t.Cleanup(func() { sub.Close() })
	w := &world{eng: eng, ctl: ctl, sub: sub, ref: ref, logs: make(chan string, 1000)}
	w.waitTarget(t, func(ts core.TargetStatus) bool { return ts.Current == stable && ts.Healthy })
	return w
}

func openStore(t testing.TB) *sqlitestore.Store {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// wait reads the engine's events until pred holds, collecting log lines.
func (w *world) wait(t *testing.T, what string, pred func(core.Event) bool) core.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		ev, err := w.sub.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ev.Kind == core.EvLog && ev.Log != nil {
			select {
			case w.logs <- ev.Log.Text:
			default:
			}
		}
		if pred(ev) {
			return ev
		}
	}
}

func (w *world) waitTarget(t *testing.T, pred func(core.TargetStatus) bool) core.TargetStatus {
	t.Helper()
	if ts, ok := w.eng.Snapshot().Targets[w.ref]; ok && pred(ts) {
		return ts
	}
	ev := w.wait(t, "target status", func(ev core.Event) bool { return ev.Kind == core.EvTarget && ev.Target != nil && pred(*ev.Target) })
	return *ev.Target
}

func (w *world) do(t *testing.T, kind core.CommandKind, version string) core.Result {
	t.Helper()
	res, err := w.eng.Do(context.Background(), core.Command{Kind: kind, Ref: w.ref, Version: version, Actor: core.Actor{Name: "ana", Host: "bastion-1"}})
	if err != nil {
		t.Fatalf("%s %s: %v (%+v)", kind, version, err, res)
	}
	return res
}

// logged reports whether a provider log line containing s reached the
// engine.
func (w *world) logged(s string) bool {
	for {
		select {
		case l := <-w.logs:
			if strings.Contains(l, s) {
				return true
			}
		default:
			return false
		}
	}
}
