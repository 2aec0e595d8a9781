package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/ripcordhq/ripcord/plugins/sdk"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

var everything = labels.Everything()

// split divides total replicas between stable and canary to approximate
// weight percent for the canary: at least one canary pod, and at least one
// stable pod while the weight is below 100 (a single replica gets a second
// one, the canary, for the duration).
func split(total int32, weight int) (stable, canary int32) {
	if total < 1 {
		total = 1
	}
	if total == 1 {
		return 1, 1
	}
	canary = int32(math.Round(float64(total) * float64(weight) / 100))
	canary = max(canary, 1)
	canary = min(canary, total-1)
	return total - canary, canary
}

// achieved says how close the split came to the request.
func achieved(weight int, stable, canary int32) string {
	share := int(math.Round(100 * float64(canary) / float64(stable+canary)))
	return fmt.Sprintf("%d%% requested, %d of %d pods = %d%%", weight, canary, stable+canary, share)
}

// rolloutStatus reads a Deployment the way `kubectl rollout status` does:
// done, or what it is waiting for, or an error once the progress deadline
// is exceeded.
func rolloutStatus(d *appsv1.Deployment) (done bool, msg string, err error) {
	if d.Generation > d.Status.ObservedGeneration {
		return false, fmt.Sprintf("waiting for deployment %q spec update to be observed", d.Name), nil
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			return false, "", fmt.Errorf("deployment %q exceeded its progress deadline: %s", d.Name, c.Message)
		}
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	switch {
	case d.Status.UpdatedReplicas < want:
		return false, fmt.Sprintf("deployment %q: %d out of %d new replicas have been updated", d.Name, d.Status.UpdatedReplicas, want), nil
	case d.Status.Replicas > d.Status.UpdatedReplicas:
		return false, fmt.Sprintf("deployment %q: %d old replicas are pending termination", d.Name, d.Status.Replicas-d.Status.UpdatedReplicas), nil
	case d.Status.AvailableReplicas < d.Status.UpdatedReplicas:
		return false, fmt.Sprintf("deployment %q: %d of %d updated replicas are available", d.Name, d.Status.AvailableReplicas, d.Status.UpdatedReplicas), nil
	}
	return true, fmt.Sprintf("deployment %q successfully rolled out", d.Name), nil
}

// totalReplicas is the stable Deployment's full size: its annotation
// while a canary runs, else its replicas.
func totalReplicas(d *appsv1.Deployment) int32 {
	if n, err := strconv.Atoi(d.Annotations[AnnotationReplicas]); err == nil && n > 0 {
		return int32(n)
	}
	if d.Spec.Replicas != nil {
		return *d.Spec.Replicas
	}
	return 1
}

func deploymentStatus(c *cluster) sdk.TargetStatus {
	s := c.s
	var ts sdk.TargetStatus
	st, err := c.deployments.Deployments(s.Namespace).Get(s.Workload)
	if err != nil {
		ts.Problems = []string{fmt.Sprintf("deployment %s/%s not found", s.Namespace, s.Workload)}
		return ts
	}
	ts.Current = versionOf(st.Spec.Template, s.Container)
	done, msg, rerr := rolloutStatus(st)
	ts.Healthy = done
	if rerr != nil {
		ts.Problems = append(ts.Problems, rerr.Error())
	} else if !done {
		ts.Problems = append(ts.Problems, msg)
	}
	// A canary scaled to 0 (an abort) is still the candidate, at 0%: it
	// stays installed for inspection and a later weight resumes it.
	if can, err := c.deployments.Deployments(s.Namespace).Get(CanaryName(s.Workload)); err == nil {
		ts.Candidate = versionOf(can.Spec.Template, s.Container)
		n := int32(1) // unset means 1
		if can.Spec.Replicas != nil {
			n = *can.Spec.Replicas
		}
		if n > 0 {
			var stable int32
			if st.Spec.Replicas != nil {
				stable = *st.Spec.Replicas
			}
			ts.Weight = int(math.Round(100 * float64(n) / float64(stable+n)))
			cdone, cmsg, cerr := rolloutStatus(can)
			ts.Healthy = ts.Healthy && cdone
			if cerr != nil {
				ts.Problems = append(ts.Problems, cerr.Error())
			} else if !cdone {
				ts.Problems = append(ts.Problems, cmsg)
			}
		}
	}
	for _, h := range history(c, s) {
		if h.version != ts.Current && h.version != ts.Candidate {
			ts.Kept = append(ts.Kept, h.version)
		}
	}
	return ts
}

func deploymentPlan(c *cluster, s Settings, image, version string, weight int) []string {
	st, err := c.deployments.Deployments(s.Namespace).Get(s.Workload)
	if err != nil {
		return []string{fmt.Sprintf("deployment %s/%s not found: nothing can be deployed", s.Namespace, s.Workload)}
	}
	if weight >= 100 {
		return []string{fmt.Sprintf("set the image of deployment %s/%s to %s (%s), %d replicas", s.Namespace, s.Workload, image, version, totalReplicas(st))}
	}
	stable, canary := split(totalReplicas(st), weight)
	return []string{
		fmt.Sprintf("run %s (%s) as deployment %s/%s with %d replicas, behind the same selector plus %s=canary", version, image, s.Namespace, CanaryName(s.Workload), canary, s.TrackLabel),
		fmt.Sprintf("scale deployment %s/%s to %d replicas: %s", s.Namespace, s.Workload, stable, achieved(weight, stable, canary)),
	}
}

// deploymentApply carries out an intent in deployment mode. Every step is
// an absolute write (set this image, these replicas), so applying an
// intent again after an interruption finishes it instead of repeating it.
func deploymentApply(ctx context.Context, op *sdk.Op, c *cluster, s Settings, in intent) error {
	d := deployments{c: c, s: s, op: op, gen: map[string]int64{}}
	st, err := d.get(ctx, s.Workload)
	if err != nil {
		return err
	}
	if st == nil {
		return fmt.Errorf("deployment %s/%s not found", s.Namespace, s.Workload)
	}
	if i := containerIndex(st.Spec.Template.Spec.Containers, s.Container); i < 0 {
		return containerError(s, st.Spec.Template.Spec.Containers)
	}
	total := totalReplicas(st)
	canary, err := d.get(ctx, CanaryName(s.Workload))
	if err != nil {
		return err
	}
	if in.Kind == "weight" && in.Weight > 0 && in.Image == "" {
		// Promote, re-split or resume (after an abort left it at 0
		// replicas) what the canary runs; the intent records its image so
		// a re-attached operation needs no canary to read.
		if canary == nil {
			return fmt.Errorf("deployment %s/%s has no canary: deploy a release first", s.Namespace, s.Workload)
		}
		in.Image, in.Version = imageOf(canary.Spec.Template, s.Container), versionOf(canary.Spec.Template, s.Container)
	}

	switch {
	case in.Kind == "rollback":
		// The bad release stops serving first, then stable is restored.
		if err := d.setStable(ctx, in, total, &in, false); err != nil {
			return err
		}
		if err := d.deleteCanary(ctx); err != nil {
			return err
		}
		return d.waitStable(ctx, total)

	case in.Weight >= 100:
		if err := d.setStable(ctx, in, total, &in, false); err != nil {
			return err
		}
		if err := d.waitStable(ctx, total); err != nil {
			return err
		}
		return d.deleteCanary(ctx)

	case in.Weight == 0:
		if err := d.setStable(ctx, in, total, nil, false); err != nil {
			return err
		}
		if canary != nil {
			if err := d.scaleCanary(ctx, 0); err != nil {
				return err
			}
		}
		if err := d.waitStable(ctx, total); err != nil {
			return err
		}
		_ = op.Progress(1, fmt.Sprintf("0%% requested: deployment %s/%s serves all %d pods; the canary is kept at 0 replicas for inspection", s.Namespace, s.Workload, total))
		return nil

	default:
		stable, can := split(total, in.Weight)
		// Record the intent and the full size before anything moves.
		if err := d.setStable(ctx, in, total, nil, true); err != nil {
			return err
		}
		if err := d.ensureCanary(ctx, st, in, can); err != nil {
			return err
		}
		if err := d.waitDeployment(ctx, CanaryName(s.Workload), can); err != nil {
			return err
		}
		if err := d.scaleStable(ctx, stable); err != nil {
			return err
		}
		if err := d.waitDeployment(ctx, s.Workload, stable); err != nil {
			return err
		}
		_ = op.Progress(1, achieved(in.Weight, stable, can))
		return nil
	}
}

// deployments writes the stable and canary Deployments of one workload.
type deployments struct {
	c  *cluster
	s  Settings
	op *sdk.Op
	// gen is the generation each write produced: a wait reads the cache
	// only once it has caught up with the write.
	gen map[string]int64
}

// get reads a Deployment from the API server (not the cache: writes are
// computed from the newest state); nil when it does not exist.
func (d deployments) get(ctx context.Context, name string) (*appsv1.Deployment, error) {
	var out *appsv1.Deployment
	err := retry(ctx, "reading deployment "+d.s.Namespace+"/"+name, func(ctx context.Context) error {
		got, err := d.c.kube.AppsV1().Deployments(d.s.Namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			out = nil
			return nil
		}
		out = got
		return err
	})
	return out, err
}

func (d deployments) patch(ctx context.Context, name string, patch map[string]any, what string) error {
	body, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	err = retry(ctx, what, func(ctx context.Context) error {
		got, err := d.c.kube.AppsV1().Deployments(d.s.Namespace).Patch(ctx, name, types.StrategicMergePatchType, body, metav1.PatchOptions{FieldManager: "ripcord"})
		if err == nil {
			d.gen[name] = got.Generation
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	_ = d.op.Log("stdout", what)
	return nil
}

// setStable writes the intent on the stable Deployment; with image set
// (rollback, promotion) it also sets the template and the full size, and
// with keepTotal it records the full size for a canary split.
func (d deployments) setStable(ctx context.Context, in intent, total int32, image *intent, keepTotal bool) error {
	meta := map[string]any{AnnotationOperation: in.annotation()}
	spec := map[string]any{}
	what := fmt.Sprintf("recorded operation %s on deployment %s/%s", in.ID, d.s.Namespace, d.s.Workload)
	switch {
	case image != nil:
		meta[AnnotationReplicas] = nil
		spec["replicas"] = total
		spec["template"] = map[string]any{
			"metadata": map[string]any{"annotations": map[string]any{AnnotationVersion: image.Version}},
			"spec":     map[string]any{"containers": []any{map[string]any{"name": d.containerName(ctx), "image": image.Image}}},
		}
		what = fmt.Sprintf("set deployment %s/%s to %s (%s), %d replicas", d.s.Namespace, d.s.Workload, image.Version, image.Image, total)
	case keepTotal:
		meta[AnnotationReplicas] = strconv.Itoa(int(total))
	default:
		meta[AnnotationReplicas] = nil
		spec["replicas"] = total
		what = fmt.Sprintf("scaled deployment %s/%s back to %d replicas", d.s.Namespace, d.s.Workload, total)
	}
	patch := map[string]any{"metadata": map[string]any{"annotations": meta}}
	if len(spec) > 0 {
		patch["spec"] = spec
	}
	return d.patch(ctx, d.s.Workload, patch, what)
}

// containerName is the configured container, or the only one.
func (d deployments) containerName(ctx context.Context) string {
	if d.s.Container != "" {
		return d.s.Container
	}
	if st, err := d.c.deployments.Deployments(d.s.Namespace).Get(d.s.Workload); err == nil && len(st.Spec.Template.Spec.Containers) == 1 {
		return st.Spec.Template.Spec.Containers[0].Name
	}
	if st, err := d.get(ctx, d.s.Workload); err == nil && st != nil && len(st.Spec.Template.Spec.Containers) == 1 {
		return st.Spec.Template.Spec.Containers[0].Name
	}
	return ""
}

func (d deployments) scaleStable(ctx context.Context, replicas int32) error {
	return d.patch(ctx, d.s.Workload, map[string]any{"spec": map[string]any{"replicas": replicas}},
		fmt.Sprintf("scaled deployment %s/%s to %d replicas", d.s.Namespace, d.s.Workload, replicas))
}

func (d deployments) scaleCanary(ctx context.Context, replicas int32) error {
	return d.patch(ctx, CanaryName(d.s.Workload), map[string]any{"spec": map[string]any{"replicas": replicas}},
		fmt.Sprintf("scaled deployment %s/%s to %d replicas", d.s.Namespace, CanaryName(d.s.Workload), replicas))
}

// ensureCanary creates the canary Deployment from the stable one (same
// selector plus the track label, so the same Service sends it traffic) or
// updates its image and replicas.
func (d deployments) ensureCanary(ctx context.Context, stable *appsv1.Deployment, in intent, replicas int32) error {
	name := CanaryName(d.s.Workload)
	existing, err := d.get(ctx, name)
	if err != nil {
		return err
	}
	if existing != nil && existing.Spec.Selector.MatchLabels[d.s.TrackLabel] == "canary" {
		ci := containerIndex(existing.Spec.Template.Spec.Containers, d.s.Container)
		if ci < 0 {
			return containerError(d.s, existing.Spec.Template.Spec.Containers)
		}
		return d.patch(ctx, name, map[string]any{
			"metadata": map[string]any{"annotations": map[string]any{AnnotationOperation: in.annotation()}},
			"spec": map[string]any{
				"replicas": replicas,
				"template": map[string]any{
					"metadata": map[string]any{"annotations": map[string]any{AnnotationVersion: in.Version}},
					"spec":     map[string]any{"containers": []any{map[string]any{"name": existing.Spec.Template.Spec.Containers[ci].Name, "image": in.Image}}},
				},
			},
		}, fmt.Sprintf("set deployment %s/%s to %s (%s), %d replicas", d.s.Namespace, name, in.Version, in.Image, replicas))
	}
	if existing != nil {
		return fmt.Errorf("deployment %s/%s exists but is not a canary of %s (its selector lacks %s=canary); rename or remove it", d.s.Namespace, name, d.s.Workload, d.s.TrackLabel)
	}
	can := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: d.s.Namespace,
			Labels:      copyMap(stable.Labels, map[string]string{d.s.TrackLabel: "canary"}),
			Annotations: map[string]string{AnnotationOperation: in.annotation()},
		},
		Spec: *stable.Spec.DeepCopy(),
	}
	can.Spec.Replicas = &replicas
	can.Spec.Paused = false
	sel := stable.Spec.Selector.DeepCopy()
	sel.MatchLabels = copyMap(sel.MatchLabels, map[string]string{d.s.TrackLabel: "canary"})
	can.Spec.Selector = sel
	tmpl := &can.Spec.Template
	tmpl.Labels = copyMap(tmpl.Labels, map[string]string{d.s.TrackLabel: "canary"})
	tmpl.Annotations = copyMap(tmpl.Annotations, map[string]string{AnnotationVersion: in.Version})
	tmpl.Spec.Containers[containerIndex(tmpl.Spec.Containers, d.s.Container)].Image = in.Image
	what := fmt.Sprintf("created deployment %s/%s running %s (%s), %d replicas", d.s.Namespace, name, in.Version, in.Image, replicas)
	err = retry(ctx, what, func(ctx context.Context) error {
		got, err := d.c.kube.AppsV1().Deployments(d.s.Namespace).Create(ctx, can, metav1.CreateOptions{FieldManager: "ripcord"})
		if err == nil {
			d.gen[name] = got.Generation
		}
		if apierrors.IsAlreadyExists(err) {
			// A retried create whose first attempt landed: patch instead.
			return d.ensureCanaryExisting(ctx, in, replicas)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("creating deployment %s/%s: %w", d.s.Namespace, name, err)
	}
	_ = d.op.Log("stdout", what)
	return nil
}

func (d deployments) ensureCanaryExisting(ctx context.Context, in intent, replicas int32) error {
	st, err := d.get(ctx, d.s.Workload)
	if err != nil || st == nil {
		return err
	}
	return d.ensureCanary(ctx, st, in, replicas)
}

func (d deployments) deleteCanary(ctx context.Context) error {
	name := CanaryName(d.s.Workload)
	fg := metav1.DeletePropagationForeground
	found := true
	err := retry(ctx, "deleting deployment "+d.s.Namespace+"/"+name, func(ctx context.Context) error {
		err := d.c.kube.AppsV1().Deployments(d.s.Namespace).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &fg})
		if apierrors.IsNotFound(err) {
			found = false
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("deleting deployment %s/%s: %w", d.s.Namespace, name, err)
	}
	if found {
		_ = d.op.Log("stdout", fmt.Sprintf("deleted deployment %s/%s", d.s.Namespace, name))
	}
	return d.c.until(ctx, "waiting for deployment "+d.s.Namespace+"/"+name+" to be gone", func() (bool, string, error) {
		_, err := d.c.deployments.Deployments(d.s.Namespace).Get(name)
		return apierrors.IsNotFound(err), "deployment " + name + " still exists", nil
	})
}

func (d deployments) waitStable(ctx context.Context, total int32) error {
	return d.waitDeployment(ctx, d.s.Workload, total)
}

// waitDeployment waits until a Deployment has the replicas asked for and
// its rollout is complete, as `kubectl rollout status` would say.
func (d deployments) waitDeployment(ctx context.Context, name string, replicas int32) error {
	lastMsg := ""
	return d.c.until(ctx, fmt.Sprintf("waiting for deployment %s/%s", d.s.Namespace, name), func() (bool, string, error) {
		dep, err := d.c.deployments.Deployments(d.s.Namespace).Get(name)
		if err != nil {
			return false, "deployment " + name + " not in the cache yet", nil
		}
		if dep.Generation < d.gen[name] || dep.Spec.Replicas == nil || *dep.Spec.Replicas != replicas {
			return false, fmt.Sprintf("deployment %q: waiting for the change to %d replicas to be seen", name, replicas), nil
		}
		done, msg, err := rolloutStatus(dep)
		if err != nil {
			return false, "", err
		}
		if msg != lastMsg {
			lastMsg = msg
			_ = d.op.Progress(-1, msg)
		}
		return done, msg, nil
	})
}

func copyMap(base map[string]string, extra map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(extra))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}
