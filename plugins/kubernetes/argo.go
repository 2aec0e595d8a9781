package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/ripcordhq/ripcord/plugins/sdk"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// The patches the kubectl argo rollouts plugin (v1.10) sends.
const (
	argoUnpausePatch       = `{"spec":{"paused":false}}`
	argoClearPausePatch    = `{"status":{"pauseConditions":null}}`
	argoSetStepPatch       = `{"status":{"pauseConditions":null,"currentStepIndex":%d}}`
	argoPromoteFullPatch   = `{"status":{"promoteFull":true}}`
	argoAbortPatch         = `{"status":{"abort":true}}`
	argoRetryPatch         = `{"status":{"abort":false}}`
	argoPodTemplateHashKey = "rollouts-pod-template-hash"
	argoRevisionAnnotation = "rollout.argoproj.io/revision"
	argoPhaseHealthy       = "Healthy"
	argoPhasePaused        = "Paused"
	argoPhaseDegraded      = "Degraded"
	argoStatusSubresource  = "status"
	argoFieldManager       = "ripcord"
)

// rollout is the part of a Rollout the provider reads.
type rollout struct {
	obj          *unstructured.Unstructured
	generation   int64
	observed     bool // status.observedGeneration caught up with the spec
	template     corev1.PodTemplateSpec
	steps        []map[string]any
	stepIndex    int // status.currentStepIndex; len(steps) when done
	paused       bool
	aborted      bool
	promoteFull  bool
	phase        string
	message      string
	stableRS     string
	currentHash  string
	replicas     int32
	available    int32
	annotations  map[string]string
	hasSpecPause bool
}

func parseRollout(obj *unstructured.Unstructured) (rollout, error) {
	r := rollout{obj: obj, generation: obj.GetGeneration(), annotations: obj.GetAnnotations()}
	tmpl, _, _ := unstructured.NestedMap(obj.Object, "spec", "template")
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(tmpl, &r.template); err != nil {
		return r, fmt.Errorf("reading the pod template of rollout %s: %w", obj.GetName(), err)
	}
	steps, _, _ := unstructured.NestedSlice(obj.Object, "spec", "strategy", "canary", "steps")
	for _, s := range steps {
		m, _ := s.(map[string]any)
		r.steps = append(r.steps, m)
	}
	r.stepIndex = len(r.steps)
	if i, ok, _ := unstructured.NestedInt64(obj.Object, "status", "currentStepIndex"); ok {
		r.stepIndex = int(i)
	}
	og, _, _ := unstructured.NestedString(obj.Object, "status", "observedGeneration")
	r.observed = og == strconv.FormatInt(r.generation, 10)
	r.hasSpecPause, _, _ = unstructured.NestedBool(obj.Object, "spec", "paused")
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "pauseConditions")
	ctrlPause, _, _ := unstructured.NestedBool(obj.Object, "status", "controllerPause")
	r.paused = r.hasSpecPause || len(conds) > 0 || ctrlPause
	r.aborted, _, _ = unstructured.NestedBool(obj.Object, "status", "abort")
	r.promoteFull, _, _ = unstructured.NestedBool(obj.Object, "status", "promoteFull")
	r.phase, _, _ = unstructured.NestedString(obj.Object, "status", "phase")
	r.message, _, _ = unstructured.NestedString(obj.Object, "status", "message")
	r.stableRS, _, _ = unstructured.NestedString(obj.Object, "status", "stableRS")
	r.currentHash, _, _ = unstructured.NestedString(obj.Object, "status", "currentPodHash")
	if n, ok, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas"); ok {
		r.replicas = int32(n)
	} else {
		r.replicas = 1
	}
	if n, ok, _ := unstructured.NestedInt64(obj.Object, "status", "availableReplicas"); ok {
		r.available = int32(n)
	}
	return r, nil
}

// weight is the canary weight Argo has reached: the last setWeight at or
// before the current step, 100 once every step is done.
func (r rollout) weight() int {
	if r.stepIndex >= len(r.steps) {
		return 100
	}
	w := 0
	for i := 0; i <= r.stepIndex && i < len(r.steps); i++ {
		if v, ok := r.steps[i]["setWeight"]; ok {
			w = toInt(v)
		}
	}
	return w
}

func toInt(v any) int {
	switch n := v.(type) {
	case int64:
		return int(n)
	case float64:
		return int(n)
	case int:
		return n
	}
	return 0
}

// stepText describes Argo's current step for the screen.
func (r rollout) stepText() string {
	if r.stepIndex >= len(r.steps) {
		return fmt.Sprintf("all %d steps done", len(r.steps))
	}
	step := r.steps[r.stepIndex]
	desc := "step"
	switch {
	case step["setWeight"] != nil:
		desc = fmt.Sprintf("setWeight %d", toInt(step["setWeight"]))
	case step["pause"] != nil:
		desc = "pause"
		if p, ok := step["pause"].(map[string]any); ok && p["duration"] != nil {
			desc = fmt.Sprintf("pause %v", p["duration"])
		}
	default:
		for k := range step {
			desc = k
		}
	}
	return fmt.Sprintf("step %d/%d (%s)", r.stepIndex+1, len(r.steps), desc)
}

func (r rollout) summary() string {
	phase := r.phase
	if phase == "" {
		phase = "Unknown"
	}
	s := fmt.Sprintf("Argo %s at %s, weight %d%%, %d of %d replicas available", phase, r.stepText(), r.weight(), r.available, r.replicas)
	if r.message != "" {
		s += ": " + r.message
	}
	return s
}

func getRollout(c *cluster, s Settings) (*unstructured.Unstructured, error) {
	obj, err := c.rollouts.ByNamespace(s.Namespace).Get(s.Workload)
	if err != nil {
		return nil, err
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("rollout %s/%s: unexpected type %T", s.Namespace, s.Workload, obj)
	}
	return u, nil
}

// rsVersion names the release a ReplicaSet of the rollout runs, by its
// pod template hash.
func rsVersion(c *cluster, s Settings, hash string) string {
	if hash == "" {
		return ""
	}
	rss, _ := c.replicaSets.ReplicaSets(s.Namespace).List(everything)
	for _, rs := range rss {
		if rs.Labels[argoPodTemplateHashKey] == hash {
			return versionOf(rs.Spec.Template, s.Container)
		}
	}
	return ""
}

func argoStatus(c *cluster) sdk.TargetStatus {
	s := c.s
	var ts sdk.TargetStatus
	obj, err := getRollout(c, s)
	if err != nil {
		ts.Problems = []string{fmt.Sprintf("rollout %s/%s not found", s.Namespace, s.Workload)}
		return ts
	}
	r, err := parseRollout(obj)
	if err != nil {
		ts.Problems = []string{err.Error()}
		return ts
	}
	ts.Current = rsVersion(c, s, r.stableRS)
	if ts.Current == "" {
		ts.Current = versionOf(r.template, s.Container)
	}
	if r.currentHash != "" && r.currentHash != r.stableRS {
		ts.Candidate = rsVersion(c, s, r.currentHash)
		if ts.Candidate == "" {
			ts.Candidate = versionOf(r.template, s.Container)
		}
		ts.Weight = r.weight()
		if r.aborted {
			ts.Weight = 0
		}
	}
	ts.Healthy = r.observed && (r.phase == argoPhaseHealthy || r.phase == argoPhasePaused)
	if r.phase == argoPhaseDegraded || r.aborted {
		ts.Problems = append(ts.Problems, fmt.Sprintf("rollout %s/%s: %s", s.Namespace, s.Workload, r.summary()))
	}
	for _, h := range history(c, s) {
		if h.version != ts.Current && h.version != ts.Candidate {
			ts.Kept = append(ts.Kept, h.version)
		}
	}
	return ts
}

func argoPlan(c *cluster, s Settings, image, version string, weight int) []string {
	obj, err := getRollout(c, s)
	if err != nil {
		return []string{fmt.Sprintf("rollout %s/%s not found: nothing can be deployed", s.Namespace, s.Workload)}
	}
	r, _ := parseRollout(obj)
	var steps []string
	for i := range r.steps {
		steps = append(steps, rollout{steps: r.steps, stepIndex: i}.stepText())
	}
	out := []string{fmt.Sprintf("set the image of rollout %s/%s to %s (%s)", s.Namespace, s.Workload, image, version)}
	if weight >= 100 {
		out = append(out, "promote it fully, skipping Argo's steps")
	} else {
		out = append(out, fmt.Sprintf("let Argo run its steps until a pause at %d%% or more: %s", weight, strings.Join(steps, ", ")))
	}
	return out
}

// argo drives one Rollout.
type argo struct {
	c  *cluster
	s  Settings
	op *sdk.Op
	// gen is the generation of the last spec write; waits read the cache
	// only once the controller has observed it.
	gen int64
}

func (a *argo) client() interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions, sub ...string) (*unstructured.Unstructured, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, sub ...string) (*unstructured.Unstructured, error)
} {
	return a.c.dyn.Resource(RolloutGVR).Namespace(a.s.Namespace)
}

func (a *argo) fresh(ctx context.Context) (rollout, error) {
	var obj *unstructured.Unstructured
	err := retry(ctx, "reading rollout "+a.s.Namespace+"/"+a.s.Workload, func(ctx context.Context) error {
		var err error
		obj, err = a.client().Get(ctx, a.s.Workload, metav1.GetOptions{})
		return err
	})
	if err != nil {
		return rollout{}, err
	}
	return parseRollout(obj)
}

func (a *argo) patch(ctx context.Context, pt types.PatchType, body []byte, what string, sub ...string) error {
	err := retry(ctx, what, func(ctx context.Context) error {
		got, err := a.client().Patch(ctx, a.s.Workload, pt, body, metav1.PatchOptions{FieldManager: argoFieldManager}, sub...)
		if err == nil && len(sub) == 0 {
			a.gen = got.GetGeneration()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	_ = a.op.Log("stdout", what)
	return nil
}

// jsonPointer escapes a map key for a JSON patch path.
func jsonPointer(key string) string {
	return strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1")
}

// setTemplate writes the intent and either the image and version (set
// image) or a whole pod template (undo), as one JSON patch.
func (a *argo) setTemplate(ctx context.Context, r rollout, in intent, template *corev1.PodTemplateSpec, what string) error {
	var ops []map[string]any
	if r.annotations == nil {
		ops = append(ops, map[string]any{"op": "add", "path": "/metadata/annotations", "value": map[string]string{AnnotationOperation: in.annotation()}})
	} else {
		ops = append(ops, map[string]any{"op": "add", "path": "/metadata/annotations/" + jsonPointer(AnnotationOperation), "value": in.annotation()})
	}
	if template != nil {
		ops = append(ops, map[string]any{"op": "replace", "path": "/spec/template", "value": template})
	} else {
		i := containerIndex(r.template.Spec.Containers, a.s.Container)
		if i < 0 {
			return containerError(a.s, r.template.Spec.Containers)
		}
		ops = append(ops,
			map[string]any{"op": "test", "path": fmt.Sprintf("/spec/template/spec/containers/%d/name", i), "value": r.template.Spec.Containers[i].Name},
			map[string]any{"op": "replace", "path": fmt.Sprintf("/spec/template/spec/containers/%d/image", i), "value": in.Image})
		if r.template.Annotations == nil {
			ops = append(ops, map[string]any{"op": "add", "path": "/spec/template/metadata/annotations", "value": map[string]string{AnnotationVersion: in.Version}})
		} else {
			ops = append(ops, map[string]any{"op": "add", "path": "/spec/template/metadata/annotations/" + jsonPointer(AnnotationVersion), "value": in.Version})
		}
	}
	body, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	return a.patch(ctx, types.JSONPatchType, body, what)
}

// promote is `kubectl argo rollouts promote`: unpause, clear the pause
// conditions, or step past the current step.
func (a *argo) promote(ctx context.Context, r rollout) error {
	if r.hasSpecPause {
		if err := a.patch(ctx, types.MergePatchType, []byte(argoUnpausePatch), fmt.Sprintf("unpaused rollout %s/%s", a.s.Namespace, a.s.Workload)); err != nil {
			return err
		}
	}
	what := fmt.Sprintf("promoted rollout %s/%s past %s", a.s.Namespace, a.s.Workload, r.stepText())
	if r.paused && !r.hasSpecPause {
		return a.patch(ctx, types.MergePatchType, []byte(argoClearPausePatch), what, argoStatusSubresource)
	}
	if !r.paused && r.stepIndex < len(r.steps) {
		return a.patch(ctx, types.MergePatchType, fmt.Appendf(nil, argoSetStepPatch, r.stepIndex+1), what, argoStatusSubresource)
	}
	return nil
}

// promoteFull is `kubectl argo rollouts promote --full`.
func (a *argo) promoteFull(ctx context.Context, r rollout) error {
	if r.hasSpecPause {
		if err := a.patch(ctx, types.MergePatchType, []byte(argoUnpausePatch), fmt.Sprintf("unpaused rollout %s/%s", a.s.Namespace, a.s.Workload)); err != nil {
			return err
		}
	}
	if r.currentHash != r.stableRS {
		return a.patch(ctx, types.MergePatchType, []byte(argoPromoteFullPatch), fmt.Sprintf("promoted rollout %s/%s fully (promote --full)", a.s.Namespace, a.s.Workload), argoStatusSubresource)
	}
	return nil
}

// retryAborted is `kubectl argo rollouts retry rollout`.
func (a *argo) retryAborted(ctx context.Context, r rollout) error {
	if !r.aborted {
		return nil
	}
	return a.patch(ctx, types.MergePatchType, []byte(argoRetryPatch), fmt.Sprintf("cleared the abort of rollout %s/%s (retry)", a.s.Namespace, a.s.Workload), argoStatusSubresource)
}

// argoApply carries out an intent on a Rollout.
func argoApply(ctx context.Context, op *sdk.Op, c *cluster, s Settings, in intent) error {
	a := &argo{c: c, s: s, op: op}
	r, err := a.fresh(ctx)
	if err != nil {
		return err
	}
	if len(r.steps) == 0 && in.Weight > 0 && in.Weight < 100 {
		return fmt.Errorf("rollout %s/%s has no canary steps: give it spec.strategy.canary.steps (setWeight and pause) for a %d%% step", s.Namespace, s.Workload, in.Weight)
	}
	switch in.Kind {
	case "deploy":
		if r.annotations[AnnotationOperation] != in.annotation() || imageOf(r.template, s.Container) != in.Image {
			if err := a.setTemplate(ctx, r, in, nil, fmt.Sprintf("set the image of rollout %s/%s to %s (%s)", s.Namespace, s.Workload, in.Version, in.Image)); err != nil {
				return err
			}
		}
		if err := a.retryAborted(ctx, r); err != nil {
			return err
		}
		return a.driveTo(ctx, in.Weight)

	case "rollback":
		tmpl, err := a.templateOf(in.Version)
		if err != nil {
			return err
		}
		if err := a.setTemplate(ctx, r, in, tmpl, fmt.Sprintf("restored rollout %s/%s to %s (undo)", s.Namespace, s.Workload, in.Version)); err != nil {
			return err
		}
		if r, err = a.fresh(ctx); err != nil {
			return err
		}
		if err := a.retryAborted(ctx, r); err != nil {
			return err
		}
		return a.driveTo(ctx, 100)

	default: // weight
		if err := a.writeIntent(ctx, r, in); err != nil {
			return err
		}
		if in.Weight == 0 {
			if !r.aborted {
				if err := a.patch(ctx, types.MergePatchType, []byte(argoAbortPatch), fmt.Sprintf("aborted rollout %s/%s", s.Namespace, s.Workload), argoStatusSubresource); err != nil {
					return err
				}
			}
			return a.waitAborted(ctx)
		}
		if r.aborted {
			if err := a.retryAborted(ctx, r); err != nil {
				return err
			}
		}
		return a.driveTo(ctx, in.Weight)
	}
}

// writeIntent records a weight operation's intent on the Rollout.
func (a *argo) writeIntent(ctx context.Context, r rollout, in intent) error {
	body, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{AnnotationOperation: in.annotation()}}})
	return a.patch(ctx, types.MergePatchType, body, fmt.Sprintf("recorded operation %s on rollout %s/%s", in.ID, a.s.Namespace, a.s.Workload))
}

// templateOf is the pod template of a kept release, from the Rollout's
// ReplicaSets, without Argo's hash label (as `undo` restores it).
func (a *argo) templateOf(version string) (*corev1.PodTemplateSpec, error) {
	obj, err := getRollout(a.c, a.s)
	if err != nil {
		return nil, err
	}
	rss, _ := a.c.replicaSets.ReplicaSets(a.s.Namespace).List(everything)
	best := -1
	var tmpl *corev1.PodTemplateSpec
	for _, rs := range rss {
		owned := false
		for _, o := range rs.OwnerReferences {
			owned = owned || o.UID == obj.GetUID()
		}
		if !owned || versionOf(rs.Spec.Template, a.s.Container) != version {
			continue
		}
		rev, _ := strconv.Atoi(rs.Annotations[argoRevisionAnnotation])
		if rev > best {
			best, tmpl = rev, rs.Spec.Template.DeepCopy()
		}
	}
	if tmpl == nil {
		return nil, fmt.Errorf("%s is not in the ReplicaSet history of rollout %s/%s", version, a.s.Namespace, a.s.Workload)
	}
	delete(tmpl.Labels, argoPodTemplateHashKey)
	return tmpl, nil
}

// driveTo promotes the Rollout pause by pause until Argo has reached
// weight (and paused there) or, at 100, until it is fully promoted and
// Healthy. Argo's own timed pauses and steps run by themselves.
func (a *argo) driveTo(ctx context.Context, weight int) error {
	promoted := map[int]bool{}
	full := false
	last := ""
	return a.c.until(ctx, fmt.Sprintf("waiting for rollout %s/%s to reach %d%%", a.s.Namespace, a.s.Workload, weight), func() (bool, string, error) {
		obj, err := getRollout(a.c, a.s)
		if err != nil {
			return false, "rollout not in the cache yet", nil
		}
		r, err := parseRollout(obj)
		if err != nil {
			return false, "", err
		}
		if r.generation < a.gen || !r.observed {
			return false, "waiting for the Argo Rollouts controller to observe the change", nil
		}
		if sum := r.summary(); sum != last {
			last = sum
			_ = a.op.Progress(float64(r.weight())/100, sum)
		}
		if r.aborted {
			return false, "", fmt.Errorf("rollout %s/%s was aborted: %s", a.s.Namespace, a.s.Workload, r.message)
		}
		if r.phase == argoPhaseDegraded {
			return false, "", fmt.Errorf("rollout %s/%s is degraded: %s", a.s.Namespace, a.s.Workload, r.message)
		}
		settled := r.phase == argoPhaseHealthy && r.currentHash == r.stableRS
		if weight >= 100 {
			if settled {
				return true, "", nil
			}
			if !full {
				full = true
				return false, last, a.promoteFull(ctx, r)
			}
			return false, last, nil
		}
		if settled {
			return true, "", nil // no steps left: Argo went all the way
		}
		if r.paused && r.weight() >= weight {
			return true, "", nil
		}
		if r.paused && !promoted[r.stepIndex] {
			promoted[r.stepIndex] = true
			return false, last, a.promote(ctx, r)
		}
		return false, last, nil
	})
}

// waitAborted waits until an aborted Rollout serves everything from its
// stable ReplicaSet again.
func (a *argo) waitAborted(ctx context.Context) error {
	return a.c.until(ctx, fmt.Sprintf("waiting for rollout %s/%s to return to stable", a.s.Namespace, a.s.Workload), func() (bool, string, error) {
		obj, err := getRollout(a.c, a.s)
		if err != nil {
			return false, "rollout not in the cache yet", nil
		}
		r, err := parseRollout(obj)
		if err != nil {
			return false, "", err
		}
		if !r.aborted {
			return false, "waiting for the abort to be seen", nil
		}
		var stableReady, canaryPods int32
		rss, _ := a.c.replicaSets.ReplicaSets(a.s.Namespace).List(everything)
		for _, rs := range rss {
			switch rs.Labels[argoPodTemplateHashKey] {
			case r.stableRS:
				stableReady = rs.Status.AvailableReplicas
			case r.currentHash:
				if r.currentHash != r.stableRS {
					canaryPods += rs.Status.Replicas
				}
			}
		}
		msg := fmt.Sprintf("aborted: stable %d of %d available, %d canary pods left", stableReady, r.replicas, canaryPods)
		_ = a.op.Progress(-1, msg)
		if stableReady >= r.replicas && canaryPods == 0 {
			_ = a.op.Progress(1, fmt.Sprintf("0%% requested: rollout %s/%s aborted, stable serves all %d pods", a.s.Namespace, a.s.Workload, r.replicas))
			return true, "", nil
		}
		return false, msg, nil
	})
}
