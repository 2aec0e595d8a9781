package kubetest

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The control plane runs a Deployment to 4 Ready pods on the kwok node,
// survives an API server restart, and leaves no process behind.
func TestControlPlaneRunsADeploymentAndStopsCleanly(t *testing.T) {
	var pids []int
	t.Run("cluster", func(t *testing.T) {
		c := Start(t, Options{})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		replicas := int32(4)
		sel := map[string]string{"app": "smoke"}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: "default"},
			Spec: appsv1.DeploymentSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: sel},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: sel},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example.test/smoke:1"}}},
				},
			},
		}
		if _, err := c.Admin.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		available := func() bool {
			got, err := c.Admin.AppsV1().Deployments("default").Get(ctx, "smoke", metav1.GetOptions{})
			return err == nil && got.Status.AvailableReplicas == 4
		}
		c.waitFor(ctx, "4 available replicas", func() (bool, error) { return available(), nil })
		pods, err := c.Admin.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=smoke"})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			if p.Spec.NodeName != KwokNode || p.Status.Phase != corev1.PodRunning {
				t.Fatalf("pod %s on %q in phase %s; want Running on %s", p.Name, p.Spec.NodeName, p.Status.Phase, KwokNode)
			}
		}

		c.KillAPIServer()
		if _, err := c.Admin.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err == nil {
			t.Fatal("the API server answered after it was killed")
		}
		c.StartAPIServer()
		c.waitFor(ctx, "the deployment after the restart", func() (bool, error) { return available(), nil })

		c.mu.Lock()
		for _, p := range c.procs {
			pids = append(pids, p.cmd.Process.Pid)
		}
		c.mu.Unlock()
		if len(pids) != 5 {
			t.Fatalf("%d component processes, want 5", len(pids))
		}
	})
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			if data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); !strings.Contains(string(data), ") Z ") {
				t.Errorf("component pid %d still runs after the test", pid)
			}
		}
	}
}

func TestNeverReadyImagesAreLeftOutOfPodReady(t *testing.T) {
	stages := []byte("---\nkind: Stage\nmetadata:\n  name: pod-ready\nspec:\n  selector:\n    matchExpressions:\n    - key: x\n---\nkind: Stage\nmetadata:\n  name: pod-delete\nspec:\n  selector:\n    matchExpressions:\n    - key: y\n")
	got := string(excludeImagesFromPodReady(stages, []string{"a@sha256:1"}))
	ready, rest, _ := strings.Cut(got, "name: pod-delete")
	if !strings.Contains(ready, "operator: 'NotIn'\n      values: ['a@sha256:1']") {
		t.Fatalf("pod-ready stage lacks the image exclusion:\n%s", got)
	}
	if strings.Contains(rest, "NotIn") {
		t.Fatalf("another stage got the exclusion:\n%s", got)
	}
}
