package kubernetes

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ripcordhq/ripcord/plugins/sdk"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestSettingsRejectEachProblemAtItsKey(t *testing.T) {
	for _, tc := range []struct {
		raw, path, msg string
	}{
		{`{"namespace":"shop","workload":"api","image":"r.io/a"}`, "kubeconfig", "is required"},
		{`{"kubeconfig":"k","in_cluster":true,"namespace":"shop","workload":"api","image":"r.io/a"}`, "in_cluster", "not both"},
		{`{"kubeconfig":"k","workload":"api","image":"r.io/a"}`, "namespace", "is required"},
		{`{"kubeconfig":"k","namespace":"Shop","workload":"api","image":"r.io/a"}`, "namespace", "not a namespace name"},
		{`{"kubeconfig":"k","namespace":"shop","image":"r.io/a"}`, "workload", "is required"},
		{`{"kubeconfig":"k","namespace":"shop","workload":"api","image":"r.io/a:1.2"}`, "image", "without tag or digest"},
		{`{"kubeconfig":"k","namespace":"shop","workload":"api","image":"r.io/a@sha256:00"}`, "image", "without tag or digest"},
		{`{"kubeconfig":"k","namespace":"shop","workload":"api","image":"r.io/a","mode":"helm"}`, "mode", "use deployment or argo-rollouts"},
		{`{"kubeconfig":"k","namespace":"shop","workload":"api","image":"r.io/a","timeout":"soon"}`, "timeout", "not a positive duration"},
		{`{"kubeconfig":"k","namespace":"shop","workload":"api","image":"r.io/a","replicas":3}`, "replicas", "unknown setting"},
		{`{"kubeconfig":"k","namespace":"shop","workload":"api","image":"r.io/a","track_label":"bad label"}`, "track_label", "not a label key"},
	} {
		_, err := ParseSettings(json.RawMessage(tc.raw))
		var se sdk.SettingErrors
		if !errors.As(err, &se) {
			t.Fatalf("%s: %v, want SettingErrors", tc.raw, err)
		}
		found := false
		for _, e := range se {
			found = found || (e.Path == tc.path && strings.Contains(e.Message, tc.msg))
		}
		if !found {
			t.Errorf("%s: %v, want %s: …%s…", tc.raw, se, tc.path, tc.msg)
		}
	}
	s, err := ParseSettings(json.RawMessage(`{"kubeconfig":"~/.kube/config","namespace":"shop","workload":"api","image":"registry.example.com:5000/shop/api"}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Mode != ModeDeployment || s.TrackLabel != DefaultTrackLabel || s.Timeout.Minutes() != 10 || strings.HasPrefix(s.Kubeconfig, "~") {
		t.Fatalf("defaults: %+v", s)
	}
}

func TestConfigureNamesAMissingContext(t *testing.T) {
	dir := t.TempDir()
	kc := dir + "/config"
	if err := writeFile(kc, "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: prod, context: {cluster: c, user: u}}]\ncurrent-context: prod\n"); err != nil {
		t.Fatal(err)
	}
	p := New(nil)
	err := p.Configure(t.Context(), sdk.ConfigureRequest{Settings: json.RawMessage(`{"kubeconfig":"` + kc + `","context":"staging","namespace":"shop","workload":"api","image":"r.io/a"}`)})
	var se sdk.SettingErrors
	if !errors.As(err, &se) || se[0].Path != "context" || !strings.Contains(se[0].Message, `context "staging" is not in`) || !strings.Contains(se[0].Message, "prod") {
		t.Fatalf("Configure with a missing context: %v", err)
	}
	if err := p.Configure(t.Context(), sdk.ConfigureRequest{Settings: json.RawMessage(`{"kubeconfig":"` + kc + `","context":"prod","namespace":"shop","workload":"api","image":"r.io/a"}`)}); err != nil {
		t.Fatalf("Configure with a good context: %v", err)
	}
	p.Close()
}

func TestSplitApproximatesTheWeightAndSaysWhatItAchieved(t *testing.T) {
	for _, tc := range []struct {
		total           int32
		weight          int
		stable, canary  int32
		achievedMessage string
	}{
		{4, 25, 3, 1, "25% requested, 1 of 4 pods = 25%"},
		{4, 50, 2, 2, "50% requested, 2 of 4 pods = 50%"},
		{4, 10, 3, 1, "10% requested, 1 of 4 pods = 25%"},
		{4, 95, 1, 3, "95% requested, 3 of 4 pods = 75%"},
		{10, 33, 7, 3, "33% requested, 3 of 10 pods = 30%"},
		{1, 25, 1, 1, "25% requested, 1 of 2 pods = 50%"},
	} {
		s, c := split(tc.total, tc.weight)
		if s != tc.stable || c != tc.canary {
			t.Errorf("split(%d, %d) = %d/%d, want %d/%d", tc.total, tc.weight, s, c, tc.stable, tc.canary)
		}
		if got := achieved(tc.weight, s, c); got != tc.achievedMessage {
			t.Errorf("achieved = %q, want %q", got, tc.achievedMessage)
		}
	}
}

func TestRolloutStatusReadsADeploymentLikeKubectl(t *testing.T) {
	four := int32(4)
	d := func(gen, observed int64, updated, total, available int32, conds ...appsv1.DeploymentCondition) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "api", Generation: gen}, Spec: appsv1.DeploymentSpec{Replicas: &four},
			Status: appsv1.DeploymentStatus{ObservedGeneration: observed, UpdatedReplicas: updated, Replicas: total, AvailableReplicas: available, Conditions: conds}}
	}
	for _, tc := range []struct {
		d    *appsv1.Deployment
		done bool
		want string
	}{
		{d(2, 1, 4, 4, 4), false, "spec update to be observed"},
		{d(2, 2, 1, 4, 4), false, "1 out of 4 new replicas have been updated"},
		{d(2, 2, 4, 6, 4), false, "2 old replicas are pending termination"},
		{d(2, 2, 4, 4, 3), false, "3 of 4 updated replicas are available"},
		{d(2, 2, 4, 4, 4), true, "successfully rolled out"},
	} {
		done, msg, err := rolloutStatus(tc.d)
		if err != nil || done != tc.done || !strings.Contains(msg, tc.want) {
			t.Errorf("rolloutStatus = %v %q %v, want %v %q", done, msg, err, tc.done, tc.want)
		}
	}
	_, _, err := rolloutStatus(d(2, 2, 1, 4, 3, appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "api-1" has timed out progressing.`}))
	if err == nil || !strings.Contains(err.Error(), "exceeded its progress deadline") {
		t.Fatalf("ProgressDeadlineExceeded: %v", err)
	}
}

func TestAForbiddenCallSaysWhoLacksWhichVerbsWhere(t *testing.T) {
	denied := apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments"}, "api",
		errors.New(`User "system:serviceaccount:shop:ripcord" cannot patch resource "deployments" in API group "apps" in the namespace "shop"`))
	err := explainForbidden(denied, ModeArgo, "shop")
	if err.Error() != "forbidden: serviceaccount ripcord cannot patch deployments in namespace shop — needs verbs patch on deployments" {
		t.Fatalf("argo mode names what it does not need: %v", err)
	}
	err = explainForbidden(denied, ModeDeployment, "shop")
	want := "forbidden: serviceaccount ripcord cannot patch deployments in namespace shop — needs verbs get, list, watch, create, patch, delete on deployments"
	if err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	status := apierrors.NewForbidden(schema.GroupResource{Group: "argoproj.io", Resource: "rollouts"}, "api",
		errors.New(`User "ana" cannot patch resource "rollouts/status" in API group "argoproj.io" in the namespace "shop"`))
	if got := explainForbidden(status, ModeArgo, "shop").Error(); got != `forbidden: user "ana" cannot patch rollouts/status in namespace shop — needs verbs patch on rollouts/status` {
		t.Fatalf("status subresource: %s", got)
	}
	if other := errors.New("connection refused"); explainForbidden(other, ModeArgo, "shop") != other {
		t.Fatal("a non-RBAC error was rewritten")
	}
}

func TestArgoWeightIsTheLastSetWeightReached(t *testing.T) {
	steps := []map[string]any{{"setWeight": int64(25)}, {"pause": map[string]any{}}, {"setWeight": int64(50)}, {"pause": map[string]any{"duration": "30s"}}}
	for idx, want := range map[int]int{0: 25, 1: 25, 2: 50, 3: 50, 4: 100} {
		if got := (rollout{steps: steps, stepIndex: idx}).weight(); got != want {
			t.Errorf("weight at step %d = %d, want %d", idx, got, want)
		}
	}
	if got := (rollout{steps: steps, stepIndex: 3}).stepText(); got != "step 4/4 (pause 30s)" {
		t.Errorf("stepText = %q", got)
	}
}

// The ripcord binary stays free of client-go: only this provider's own
// binary links it.
func TestRipcordDoesNotLinkClientGo(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/ripcordhq/ripcord/cmd/ripcord").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "k8s.io/") || strings.HasPrefix(line, "github.com/ripcordhq/ripcord/plugins/kubernetes") {
			t.Fatalf("cmd/ripcord depends on %s", line)
		}
	}
	out, err = exec.Command("go", "list", "-deps", "github.com/ripcordhq/ripcord/cmd/ripcord-provider-kubernetes").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "k8s.io/client-go/kubernetes\n") {
		t.Fatalf("the provider binary does not link client-go? %v", err)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
