package e2e

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/rollout"
	"github.com/ripcordhq/ripcord/plugins/kubernetes"
	"github.com/ripcordhq/ripcord/plugins/kubernetes/kubetest"
	"github.com/ripcordhq/ripcord/plugins/sdk"
	"github.com/ripcordhq/ripcord/plugins/sdk/conformance"
	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
)

// One control plane for the Deployment-mode tests; each runs in its own
// namespace. The API server restart runs last.
func TestDeploymentMode(t *testing.T) {
	c := kubetest.Start(t, kubetest.Options{NeverReady: []string{image("v-broken")}})
	t.Run("canary 25% then 100% then rollback", func(t *testing.T) { testCanaryPromoteRollback(t, c) })
	t.Run("a release that never becomes ready fails on its progress deadline", func(t *testing.T) { testProgressDeadline(t, c) })
	t.Run("the SDK's conformance kit", func(t *testing.T) { testConformance(t, c) })
	t.Run("an RBAC-limited service account gets a clear error, the README's Role suffices", func(t *testing.T) { testRBAC(t, c) })
	t.Run("the API server killed mid-operation", func(t *testing.T) { testAPIServerKilled(t, c) })
}

func testCanaryPromoteRollback(t *testing.T, c *kubetest.Cluster) {
	ns := "shop"
	c.Namespace(ns)
	createWorkload(t, c, ns, "api", 4, "v1", nil)
	p := startProvider(t, settings(c, c.AdminKubeconfig, "admin", ns, kubernetes.ModeDeployment, "api"))
	w := newWorld(t, p, []rollout.Step{
		{Kind: rollout.StepWeight, Weight: 25},
		{Kind: rollout.StepPause},
		{Kind: rollout.StepWeight, Weight: 100},
	}, false, "v1", "v1", "v2")

	// Promote: the canary takes 25% (1 of 4 pods) and waits for judgment.
	w.do(t, core.CmdPromote, "v2")
	w.wait(t, "the rollout to wait for judgment at 25%", func(ev core.Event) bool {
		return ev.Kind == core.EvDeployment && ev.Deployment.State == core.DeployJudgment && ev.Deployment.Weight == 25
	})
	if !w.logged("25% requested, 1 of 4 pods = 25%") {
		t.Error("the operation did not report the achieved share (25% requested, 1 of 4 pods = 25%)")
	}
	ctx := context.Background()
	stable := waitRolledOut(t, c, ns, "api", 3)
	canary := waitRolledOut(t, c, ns, "api-canary", 1)
	if got := canary.Spec.Template.Spec.Containers[0].Image; got != image("v2") {
		t.Fatalf("canary runs %s, want %s", got, image("v2"))
	}
	if got := stable.Spec.Template.Spec.Containers[0].Image; got != image("v1") {
		t.Fatalf("stable runs %s, want %s", got, image("v1"))
	}
	if sel := canary.Spec.Selector.MatchLabels; sel["app"] != "api" || sel[kubernetes.DefaultTrackLabel] != "canary" {
		t.Fatalf("canary selector %v: want the stable's app=api plus %s=canary", sel, kubernetes.DefaultTrackLabel)
	}
	if stable.Annotations[kubernetes.AnnotationReplicas] != "4" {
		t.Fatalf("stable does not record its full size: %v", stable.Annotations)
	}
	// The Service's selector reaches both: 3 stable pods and 1 canary pod.
	waitPods(t, c, ns, "api", map[string]int{image("v1"): 3, image("v2"): 1})
	ts := w.waitTarget(t, func(ts core.TargetStatus) bool { return ts.Candidate == "v2" && ts.Weight == 25 && ts.Healthy })
	if ts.Current != "v1" {
		t.Fatalf("status %+v: current should be v1", ts)
	}

	// Promote past judgment: stable runs v2 on all 4 pods, the canary is gone.
	w.do(t, core.CmdPromote, "")
	w.wait(t, "the rollout to finish", func(ev core.Event) bool {
		return ev.Kind == core.EvDeployment && ev.Deployment.State == core.DeployHealthy && ev.Deployment.Version == "v2"
	})
	stable = waitRolledOut(t, c, ns, "api", 4)
	if got := stable.Spec.Template.Spec.Containers[0].Image; got != image("v2") {
		t.Fatalf("after promotion stable runs %s, want %s", got, image("v2"))
	}
	if _, err := c.Admin.AppsV1().Deployments(ns).Get(ctx, "api-canary", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("canary still exists after promotion: %v", err)
	}
	if _, ok := stable.Annotations[kubernetes.AnnotationReplicas]; ok {
		t.Fatal("the full-size annotation outlived the canary")
	}
	waitPods(t, c, ns, "api", map[string]int{image("v2"): 4})
	w.waitTarget(t, func(ts core.TargetStatus) bool {
		return ts.Current == "v2" && ts.Candidate == "" && ts.Healthy && len(ts.Kept) == 1 && ts.Kept[0] == "v1"
	})

	// Roll back: the last good release (v1) from the ReplicaSet history.
	res := w.do(t, core.CmdRollback, "")
	stable = waitRolledOut(t, c, ns, "api", 4)
	if got := stable.Spec.Template.Spec.Containers[0].Image; got != image("v1") {
		t.Fatalf("after rollback stable runs %s, want %s", got, image("v1"))
	}
	waitPods(t, c, ns, "api", map[string]int{image("v1"): 4})
	var in struct{ ID, Kind, Version, Actor string }
	if err := json.Unmarshal([]byte(stable.Annotations[kubernetes.AnnotationOperation]), &in); err != nil {
		t.Fatalf("operation annotation: %v", err)
	}
	if in.ID != res.OperationID || in.Kind != "rollback" || in.Version != "v1" || !strings.Contains(in.Actor, "ana") {
		t.Fatalf("the rollback's operation annotation %+v does not name operation %s by ana", in, res.OperationID)
	}
	w.waitTarget(t, func(ts core.TargetStatus) bool { return ts.Current == "v1" && ts.Healthy })
}

func testProgressDeadline(t *testing.T, c *kubetest.Cluster) {
	ns := "shop-deadline"
	c.Namespace(ns)
	createWorkload(t, c, ns, "api", 2, "v1", func(d *appsv1.Deployment) {
		secs := int32(3)
		d.Spec.ProgressDeadlineSeconds = &secs
	})
	p := startProvider(t, settings(c, c.AdminKubeconfig, "admin", ns, kubernetes.ModeDeployment, "api"))
	ctx := context.Background()
	err := p.target.Deploy(ctx, core.OpRequest{ID: "op-broken", Ref: core.Ref{Service: "api", Env: "production"}}, release("v-broken"), 100, nil)
	if err == nil || !strings.Contains(err.Error(), "exceeded its progress deadline") {
		t.Fatalf("deploying a release that never becomes ready: %v; want the progress deadline named", err)
	}
	ts, err := p.target.Status(ctx, core.Ref{})
	if err != nil {
		t.Fatal(err)
	}
	if ts.Healthy || len(ts.Problems) == 0 || !strings.Contains(strings.Join(ts.Problems, ";"), "ProgressDeadlineExceeded") && !strings.Contains(strings.Join(ts.Problems, ";"), "progress deadline") {
		t.Fatalf("status after a stuck rollout: %+v; want unhealthy with the progress deadline as a problem", ts)
	}
	// The old pods keep serving: Kubernetes never scaled them below availability.
	if got := readyPods(t, c, ns, "api")[image("v1")]; got < 1 {
		t.Fatalf("no v1 pod serves after the stuck rollout: %v", readyPods(t, c, ns, "api"))
	}
}

func sdkRelease(r core.Release) sdk.Release {
	return sdk.Release{Service: r.Service, Version: r.Version, Branch: r.Branch, ArtifactDigest: r.ArtifactDigest}
}

// The provider passes the kit every third-party provider runs: handshake,
// settings errors at their key, health, and for Deploy the event order,
// cancellation within a second and idempotency on the operation id, and
// the canary contract (a canary beside the current release, abort,
// promote, rollback).
func testConformance(t *testing.T, c *kubetest.Cluster) {
	ns := "shop-conformance"
	c.Namespace(ns)
	// Ten pods, so the kit's 10% canary is exactly one pod: the status
	// reports the share the pods achieve, which the kit compares with
	// what it asked for.
	createWorkload(t, c, ns, "api", 10, "v1", nil)
	good := settings(c, c.AdminKubeconfig, "admin", ns, kubernetes.ModeDeployment, "api")
	bad := settings(c, c.AdminKubeconfig, "admin", "Not_A_Namespace", kubernetes.ModeDeployment, "api")
	conformance.Run(t, conformance.Options{
		Binary: providerBinary(t), Name: "kubernetes",
		Settings: good, BadSettings: bad, BadPath: "namespace",
		Kinds: []string{"target"}, Ref: sdk.Ref{Service: "api", Env: "production"}, Release: sdkRelease(release("v2")),
		Candidate: sdkRelease(release("v3")),
	})
}

func testRBAC(t *testing.T, c *kubetest.Cluster) {
	ns := "shop-rbac"
	c.Namespace(ns)
	createWorkload(t, c, ns, "api", 2, "v1", nil)
	ctx := context.Background()
	kubeconfig := c.ServiceAccountKubeconfig(ns, "ripcord")
	// A Role that can read deployments but not change them.
	readOnly := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "ripcord-read", Namespace: ns},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"apps"}, Resources: []string{"deployments", "replicasets"}, Verbs: []string{"get", "list", "watch"}},
		},
	}
	bind(t, c, ns, readOnly)
	p := startProvider(t, settings(c, kubeconfig, "ripcord", ns, kubernetes.ModeDeployment, "api"))
	err := p.target.Deploy(ctx, core.OpRequest{ID: "op-rbac", Ref: core.Ref{Service: "api", Env: "production"}}, release("v2"), 25, nil)
	want := "forbidden: serviceaccount ripcord cannot patch deployments in namespace shop-rbac — needs verbs get, list, watch, create, patch, delete on deployments"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("deploy with a read-only service account: %v\nwant: %s", err, want)
	}
	// Health says the same before anyone tries.
	infos, _ := p.host.List(ctx)
	eventually(t, "the provider's health to name the missing permission", func() bool {
		infos, _ = p.host.List(ctx)
		return len(infos) == 1 && strings.Contains(infos[0].Health.Message, "forbidden: serviceaccount ripcord cannot create deployments")
	}, func() string { return infos[0].Health.State + ": " + infos[0].Health.Message })
	// Nothing was half-applied: the stable Deployment is untouched.
	d, err := c.Admin.AppsV1().Deployments(ns).Get(ctx, "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Annotations[kubernetes.AnnotationOperation]; ok || *d.Spec.Replicas != 2 {
		t.Fatalf("a denied deploy changed the deployment: %v replicas %d", d.Annotations, *d.Spec.Replicas)
	}

	// The minimal Role the README documents is enough.
	role := readmeRole(t)
	role.Namespace = ns
	bind(t, c, ns, role)
	if err := p.target.Deploy(ctx, core.OpRequest{ID: "op-rbac-2", Ref: core.Ref{Service: "api", Env: "production"}}, release("v2"), 50, nil); err != nil {
		t.Fatalf("deploy with the README's Role: %v", err)
	}
	waitPods(t, c, ns, "api", map[string]int{image("v1"): 1, image("v2"): 1})
}

// bind creates a Role and binds it to the ripcord service account.
func bind(t *testing.T, c *kubetest.Cluster, ns string, role *rbacv1.Role) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.Admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "ripcord", Namespace: ns}},
	}
	if _, err := c.Admin.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// readmeRole is the Role documented in the README's Kubernetes section
// (the first YAML block with kind: Role).
func readmeRole(t *testing.T) *rbacv1.Role {
	t.Helper()
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(root + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(data), -1) {
		if !strings.Contains(m[1], "kind: Role\n") {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(m[1]), nil, nil)
		if err != nil {
			t.Fatalf("the README's Role does not parse: %v", err)
		}
		role, ok := obj.(*rbacv1.Role)
		if !ok {
			t.Fatalf("the README's Role block is a %T", obj)
		}
		return role
	}
	t.Fatal("the README documents no Role (a ```yaml block with kind: Role)")
	return nil
}

func testAPIServerKilled(t *testing.T, c *kubetest.Cluster) {
	ns := "shop-crash"
	c.Namespace(ns)
	createWorkload(t, c, ns, "api", 4, "v1", nil)
	ctx := context.Background()
	ref := core.Ref{Service: "api", Env: "production"}

	// 1. The API server dies right after the first write and comes back:
	// the operation waits it out and finishes.
	p := startProvider(t, settings(c, c.AdminKubeconfig, "admin", ns, kubernetes.ModeDeployment, "api"))
	wrote := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- p.target.Deploy(ctx, core.OpRequest{ID: "op-crash-1", Ref: ref}, release("v2"), 25, func(ev core.OpEvent) {
			if strings.Contains(ev.Log, "recorded operation op-crash-1") {
				select {
				case wrote <- struct{}{}:
				default:
				}
			}
		})
	}()
	select {
	case <-wrote:
	case err := <-done:
		t.Fatalf("deploy ended before its first write was seen: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("no first write within a minute")
	}
	c.KillAPIServer()
	c.StartAPIServer()
	if err := <-done; err != nil {
		t.Fatalf("deploy across an API server restart: %v", err)
	}
	waitRolledOut(t, c, ns, "api-canary", 1)
	waitRolledOut(t, c, ns, "api", 3)
	waitPods(t, c, ns, "api", map[string]int{image("v1"): 3, image("v2"): 1})

	// 2. The API server stays down past the operation's deadline: the
	// operation fails and says why; the workload names the operation that
	// owns it; a re-attach after the API server is back finishes it.
	short := settings(c, c.AdminKubeconfig, "admin", ns, kubernetes.ModeDeployment, "api")
	short["timeout"] = "4s"
	p2 := startProvider(t, short)
	c.KillAPIServer()
	err := p2.target.SetWeight(ctx, core.OpRequest{ID: "op-crash-2", Ref: ref}, 100, nil)
	if err == nil || !(strings.Contains(err.Error(), "deadline") && strings.Contains(err.Error(), "API server")) {
		t.Fatalf("promotion with the API server down: %v; want it to fail naming the API server and the deadline", err)
	}
	c.StartAPIServer()
	d, gerr := c.Admin.AppsV1().Deployments(ns).Get(ctx, "api", metav1.GetOptions{})
	if gerr != nil {
		t.Fatal(gerr)
	}
	owner := d.Annotations[kubernetes.AnnotationOperation]
	if !strings.Contains(owner, `"id":"op-crash-1"`) {
		// Nothing of op-crash-2 reached the cluster, so op-crash-1 still owns it.
		t.Fatalf("the workload's owner annotation is %q; want the last operation that wrote it (op-crash-1)", owner)
	}

	// 3. The provider process dies mid-operation: the host re-attaches by
	// the operation id and the new process finishes the work.
	p3 := startProvider(t, settings(c, c.AdminKubeconfig, "admin", ns, kubernetes.ModeDeployment, "api"))
	first := make(chan struct{}, 1)
	done3 := make(chan error, 1)
	var events []core.OpEvent
	go func() {
		done3 <- p3.target.SetWeight(ctx, core.OpRequest{ID: "op-crash-3", Ref: ref}, 100, func(ev core.OpEvent) {
			events = append(events, ev)
			if strings.Contains(ev.Log, "set deployment shop-crash/api to v2") {
				select {
				case first <- struct{}{}:
				default:
				}
			}
		})
	}()
	select {
	case <-first:
	case err := <-done3:
		t.Fatalf("promotion ended before its first write was seen: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("no first write within a minute")
	}
	if err := syscall.Kill(p3.pid(t), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-done3; err != nil {
		t.Fatalf("promotion whose provider process was killed: %v (events %+v)", err, events)
	}
	waitRolledOut(t, c, ns, "api", 4)
	waitPods(t, c, ns, "api", map[string]int{image("v2"): 4})
	if _, err := c.Admin.AppsV1().Deployments(ns).Get(ctx, "api-canary", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the canary outlived the re-attached promotion: %v", err)
	}
	reattached := false
	for _, ev := range events {
		reattached = reattached || strings.Contains(ev.Log, "re-attached to weight op-crash-3")
	}
	if !reattached {
		t.Errorf("no event says the new process re-attached: %+v", events)
	}
}
