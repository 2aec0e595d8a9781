package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/ripcordhq/ripcord/plugins/sdk"
	corev1 "k8s.io/api/core/v1"
)

// Annotations the provider writes.
const (
	// AnnotationOperation on the workload holds the intent of the operation
	// that last wrote it (JSON): its id, kind, target and who asked. A
	// restarted provider re-attaches by it; a person reading the object
	// sees which operation owns it.
	AnnotationOperation = "ripcord.dev/operation"
	// AnnotationVersion on a pod template names the release it runs; every
	// ReplicaSet keeps it, so the history names releases, not hashes.
	AnnotationVersion = "ripcord.dev/version"
	// AnnotationReplicas on the stable Deployment keeps its full replica
	// count while a canary takes some of it.
	AnnotationReplicas = "ripcord.dev/replicas"
)

// intent is what one operation sets out to do, stored on the workload
// with its first write.
type intent struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"` // deploy, weight, rollback
	Version string    `json:"version,omitempty"`
	Image   string    `json:"image,omitempty"`
	Weight  int       `json:"weight"`
	Actor   string    `json:"actor,omitempty"`
	Started time.Time `json:"started"`
}

func (in intent) annotation() string {
	b, _ := json.Marshal(in)
	return string(b)
}

func parseIntent(s string) (intent, bool) {
	var in intent
	if s == "" || json.Unmarshal([]byte(s), &in) != nil || in.ID == "" {
		return intent{}, false
	}
	return in, true
}

// Provider is the kubernetes deploy target.
type Provider struct {
	log hclog.Logger

	mu sync.Mutex
	s  Settings
	c  *cluster
	// deployed remembers the image of every release this process deployed,
	// to cross-check a rollback's image against the ReplicaSet history.
	deployed map[string]string

	accessMu      sync.Mutex
	accessChecked time.Time
	accessErr     error
}

var (
	_ sdk.Provider   = (*Provider)(nil)
	_ sdk.Target     = (*Provider)(nil)
	_ sdk.Reattacher = (*Provider)(nil)
)

// New returns an unconfigured provider.
func New(log hclog.Logger) *Provider {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	routeKlog(log)
	return &Provider{log: log, deployed: map[string]string{}}
}

// Configure takes the environment's target block. Nothing is sent to the
// API server here; the connection is checked by CheckHealth.
func (p *Provider) Configure(_ context.Context, req sdk.ConfigureRequest) error {
	s, err := ParseSettings(req.Settings)
	if err != nil {
		return err
	}
	c, err := newCluster(s)
	if err != nil {
		path := "kubeconfig"
		if strings.Contains(err.Error(), "context ") {
			path = "context"
		} else if s.InCluster {
			path = "in_cluster"
		}
		return sdk.SettingErrors{{Path: path, Message: err.Error()}}
	}
	p.mu.Lock()
	old := p.c
	p.s, p.c = s, c
	p.mu.Unlock()
	if old != nil {
		old.close()
	}
	p.accessMu.Lock()
	p.accessChecked, p.accessErr = time.Time{}, nil
	p.accessMu.Unlock()
	c.start()
	p.log.Info("configured", "namespace", s.Namespace, "workload", s.Workload, "mode", s.Mode)
	return nil
}

// Close stops the informers.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.c != nil {
		p.c.close()
	}
	return nil
}

func (p *Provider) current() (*cluster, Settings, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.c == nil {
		return nil, Settings{}, errors.New("not configured")
	}
	return p.c, p.s, nil
}

// CheckHealth checks that the identity holds every permission the mode
// needs (asked of the API server at most once a minute) and that the
// workload exists.
func (p *Provider) CheckHealth(ctx context.Context) error {
	c, s, err := p.current()
	if err != nil {
		return err
	}
	p.accessMu.Lock()
	if time.Since(p.accessChecked) > time.Minute || p.accessErr != nil {
		p.accessErr = checkAccess(ctx, c.kube, s.Mode, s.Namespace)
		p.accessChecked = time.Now()
	}
	err = p.accessErr
	p.accessMu.Unlock()
	if err != nil {
		return err
	}
	ts, err := p.Status(ctx, sdk.StatusRequest{})
	if err != nil {
		return err
	}
	if len(ts.Problems) > 0 {
		return sdk.Degraded("%s", strings.Join(ts.Problems, "; "))
	}
	return nil
}

// workloadName says what the provider drives, for messages.
func workloadName(s Settings) string {
	kind := "deployment"
	if s.Mode == ModeArgo {
		kind = "rollout"
	}
	return kind + " " + s.Namespace + "/" + s.Workload
}

// Status reads the workload from the informers' caches.
func (p *Provider) Status(ctx context.Context, _ sdk.StatusRequest) (sdk.TargetStatus, error) {
	c, s, err := p.current()
	if err != nil {
		return sdk.TargetStatus{}, err
	}
	if err := c.ready(ctx); err != nil {
		return sdk.TargetStatus{}, explainForbidden(err, s.Mode, s.Namespace)
	}
	if s.Mode == ModeArgo {
		return argoStatus(c), nil
	}
	return deploymentStatus(c), nil
}

// WatchStatus sends the status, then every change the informers see.
func (p *Provider) WatchStatus(ctx context.Context, req sdk.WatchStatusRequest, send func(sdk.TargetStatus) error) error {
	var last *sdk.TargetStatus
	for {
		// Read the connection afresh: a new Configure replaces it.
		c, _, err := p.current()
		if err != nil {
			return err
		}
		changed := c.changed.wait()
		ts, err := p.Status(ctx, sdk.StatusRequest{Ref: req.Ref})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if last == nil || !sameStatus(*last, ts) {
			if err := send(ts); err != nil {
				return err
			}
			last = &ts
		}
		select {
		case <-changed:
		case <-c.stop:
		case <-ctx.Done():
			return nil
		}
	}
}

func sameStatus(a, b sdk.TargetStatus) bool {
	return a.Current == b.Current && a.Candidate == b.Candidate && a.Weight == b.Weight &&
		a.Healthy == b.Healthy && slices.Equal(a.Kept, b.Kept) && slices.Equal(a.Problems, b.Problems)
}

// Releases lists the releases the workload's ReplicaSet history keeps,
// newest first.
func (p *Provider) Releases(ctx context.Context, ref sdk.Ref, limit int) ([]sdk.Release, error) {
	c, s, err := p.current()
	if err != nil {
		return nil, err
	}
	if err := c.ready(ctx); err != nil {
		return nil, err
	}
	var out []sdk.Release
	for _, h := range history(c, s) {
		rel := sdk.Release{Service: ref.Service, Version: h.version, ArtifactDigest: digestOf(h.image)}
		out = append(out, rel)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// imageFor is the image a release deploys as: the repository pinned by the
// release's artifact digest.
func imageFor(s Settings, rel sdk.Release) (string, error) {
	d := rel.ArtifactDigest
	if !strings.HasPrefix(d, "sha256:") && len(d) == 64 {
		d = "sha256:" + d
	}
	if !digestRE.MatchString(d) {
		if d == "" {
			return "", fmt.Errorf("release %s has no artifact digest: the kubernetes target deploys images pinned by digest (%s@sha256:…)", rel.Version, s.Image)
		}
		return "", fmt.Errorf("release %s: artifact digest %q is not sha256:<64 hex digits>", rel.Version, rel.ArtifactDigest)
	}
	return s.Image + "@" + d, nil
}

func digestOf(image string) string {
	if _, d, ok := strings.Cut(image, "@"); ok {
		return d
	}
	return ""
}

// Plan says what a deploy at weight would do, for the confirmation.
func (p *Provider) Plan(ctx context.Context, _ sdk.Ref, rel sdk.Release, weight int) ([]string, error) {
	c, s, err := p.current()
	if err != nil {
		return nil, err
	}
	image, err := imageFor(s, rel)
	if err != nil {
		return nil, err
	}
	if err := c.ready(ctx); err != nil {
		return nil, err
	}
	if s.Mode == ModeArgo {
		return argoPlan(c, s, image, rel.Version, weight), nil
	}
	return deploymentPlan(c, s, image, rel.Version, weight), nil
}

// externalRef names an operation on a workload: re-attaching needs
// nothing else.
func externalRef(s Settings, id string) string {
	return fmt.Sprintf("kubernetes:%s/%s/%s#%s", s.Mode, s.Namespace, s.Workload, id)
}

// begin bounds an operation by the configured deadline and records its
// external reference.
func (p *Provider) begin(ctx context.Context, op *sdk.Op) (context.Context, context.CancelFunc, *cluster, Settings, error) {
	c, s, err := p.current()
	if err != nil {
		return ctx, func() {}, nil, s, err
	}
	op.SetExternalRef(externalRef(s, op.ID))
	// An event before the first write tells the host the external ref, so
	// it can re-attach even if this process dies right after that write.
	_ = op.Progress(0, "starting on "+workloadName(s))
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	return ctx, cancel, c, s, nil
}

func actorName(op *sdk.Op) string {
	a := op.Actor
	if a.Name == "" {
		return ""
	}
	return fmt.Sprint(a)
}

// Deploy starts a release at weight (100 replaces the stable release).
func (p *Provider) Deploy(ctx context.Context, op *sdk.Op, req sdk.DeployRequest) error {
	rel, weight := req.Release, req.Weight
	ctx, cancel, c, s, err := p.begin(ctx, op)
	defer cancel()
	if err != nil {
		return err
	}
	if weight < 0 || weight > 100 {
		return fmt.Errorf("weight %d is not a share between 0 and 100", weight)
	}
	image, err := imageFor(s, rel)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.deployed[rel.Version] = image
	p.mu.Unlock()
	in := intent{ID: op.ID, Kind: "deploy", Version: rel.Version, Image: image, Weight: weight, Actor: actorName(op), Started: time.Now().UTC()}
	return p.run(ctx, op, c, s, in)
}

// SetWeight moves the canary to weight: 100 promotes it, 0 aborts it
// (traffic back on stable, the canary kept).
func (p *Provider) SetWeight(ctx context.Context, op *sdk.Op, req sdk.SetWeightRequest) error {
	weight := req.Weight
	ctx, cancel, c, s, err := p.begin(ctx, op)
	defer cancel()
	if err != nil {
		return err
	}
	if weight < 0 || weight > 100 {
		return fmt.Errorf("weight %d is not a share between 0 and 100", weight)
	}
	in := intent{ID: op.ID, Kind: "weight", Weight: weight, Actor: actorName(op), Started: time.Now().UTC()}
	return p.run(ctx, op, c, s, in)
}

// Rollback puts the workload back on a kept release, skipping steps.
func (p *Provider) Rollback(ctx context.Context, op *sdk.Op, req sdk.RollbackRequest) error {
	toVersion := req.ToVersion
	ctx, cancel, c, s, err := p.begin(ctx, op)
	defer cancel()
	if err != nil {
		return err
	}
	if err := c.ready(ctx); err != nil {
		return explainForbidden(err, s.Mode, s.Namespace)
	}
	image, err := p.rollbackImage(c, s, toVersion)
	if err != nil {
		return err
	}
	in := intent{ID: op.ID, Kind: "rollback", Version: toVersion, Image: image, Weight: 100, Actor: actorName(op), Started: time.Now().UTC()}
	return p.run(ctx, op, c, s, in)
}

// rollbackImage finds the image of version in the ReplicaSet history and
// checks it against the image this process deployed for it, if any.
func (p *Provider) rollbackImage(c *cluster, s Settings, version string) (string, error) {
	var kept []string
	image := ""
	for _, h := range history(c, s) {
		if h.version == version && image == "" {
			image = h.image
		}
		kept = append(kept, h.version)
	}
	p.mu.Lock()
	mine := p.deployed[version]
	p.mu.Unlock()
	switch {
	case image == "" && mine == "":
		return "", fmt.Errorf("%s is not in the ReplicaSet history of %s (kept: %s); it cannot be restored from the cluster", version, workloadName(s), strings.Join(kept, ", "))
	case image == "":
		return mine, nil
	case mine != "" && mine != image:
		return "", fmt.Errorf("%s ran as %s according to this provider but the ReplicaSet history of %s has %s; refusing to guess which to restore", version, mine, workloadName(s), image)
	}
	return image, nil
}

// Reattach follows an operation a previous provider process started, by
// the intent stored on the workload: it applies the rest of it (every
// write is idempotent) and waits for the result.
func (p *Provider) Reattach(ctx context.Context, op *sdk.Op, req sdk.ReattachRequest) error {
	ref := req.ExternalRef
	c, s, err := p.current()
	if err != nil {
		return err
	}
	want := externalRef(s, op.ID)
	if ref != want {
		return fmt.Errorf("operation %s was started on %s, not on %s as configured now", op.ID, ref, want)
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	if err := c.ready(ctx); err != nil {
		return explainForbidden(err, s.Mode, s.Namespace)
	}
	raw := ""
	if s.Mode == ModeArgo {
		if ro, err := getRollout(c, s); err == nil {
			raw = ro.GetAnnotations()[AnnotationOperation]
		}
	} else if d, err := c.deployments.Deployments(s.Namespace).Get(s.Workload); err == nil {
		raw = d.Annotations[AnnotationOperation]
	}
	in, ok := parseIntent(raw)
	switch {
	case !ok:
		return fmt.Errorf("operation %s left no record on %s: it never reached the cluster", op.ID, workloadName(s))
	case in.ID != op.ID:
		return fmt.Errorf("operation %s was superseded on %s by operation %s (%s by %s at %s)", op.ID, workloadName(s), in.ID, in.Kind, in.Actor, in.Started.Format(time.RFC3339))
	}
	_ = op.Log("stdout", fmt.Sprintf("re-attached to %s %s of %s", in.Kind, in.ID, workloadName(s)))
	return p.run(ctx, op, c, s, in)
}

// run applies an intent in the configured mode; denials come back as
// ForbiddenErrors.
func (p *Provider) run(ctx context.Context, op *sdk.Op, c *cluster, s Settings, in intent) error {
	if err := c.ready(ctx); err != nil {
		return explainForbidden(err, s.Mode, s.Namespace)
	}
	var err error
	if s.Mode == ModeArgo {
		err = argoApply(ctx, op, c, s, in)
	} else {
		err = deploymentApply(ctx, op, c, s, in)
	}
	return explainForbidden(err, s.Mode, s.Namespace)
}

// versionOf names the release a pod template runs: its version
// annotation, else its image.
func versionOf(t corev1.PodTemplateSpec, container string) string {
	if v := t.Annotations[AnnotationVersion]; v != "" {
		return v
	}
	img := imageOf(t, container)
	return img[strings.LastIndex(img, "/")+1:]
}

// imageOf is the configured container's image (the only container's
// when none is named).
func imageOf(t corev1.PodTemplateSpec, container string) string {
	i := containerIndex(t.Spec.Containers, container)
	if i < 0 {
		return ""
	}
	return t.Spec.Containers[i].Image
}

func containerIndex(cs []corev1.Container, name string) int {
	if name == "" {
		if len(cs) == 1 {
			return 0
		}
		return -1
	}
	for i, c := range cs {
		if c.Name == name {
			return i
		}
	}
	return -1
}

func containerError(s Settings, cs []corev1.Container) error {
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	if s.Container == "" {
		return fmt.Errorf("%s has %d containers (%s): name the one to set with container", workloadName(s), len(cs), strings.Join(names, ", "))
	}
	return fmt.Errorf("%s has no container %q (it has: %s)", workloadName(s), s.Container, strings.Join(names, ", "))
}

// kept is one ReplicaSet of the workload's history.
type kept struct {
	revision int
	version  string
	image    string
}

// history is the workload's ReplicaSets (the canary's too), newest
// revision first, one entry per version.
func history(c *cluster, s Settings) []kept {
	owners := map[string]bool{}
	if s.Mode == ModeArgo {
		if ro, err := getRollout(c, s); err == nil {
			owners[string(ro.GetUID())] = true
		}
	} else {
		for _, name := range []string{s.Workload, CanaryName(s.Workload)} {
			if d, err := c.deployments.Deployments(s.Namespace).Get(name); err == nil {
				owners[string(d.UID)] = true
			}
		}
	}
	rss, _ := c.replicaSets.ReplicaSets(s.Namespace).List(everything)
	var out []kept
	for _, rs := range rss {
		ctrl := false
		for _, o := range rs.OwnerReferences {
			if o.Controller != nil && *o.Controller && owners[string(o.UID)] {
				ctrl = true
			}
		}
		if !ctrl {
			continue
		}
		rev, _ := strconv.Atoi(rs.Annotations["deployment.kubernetes.io/revision"]) // Argo writes rollout.argoproj.io/revision
		if r, err := strconv.Atoi(rs.Annotations["rollout.argoproj.io/revision"]); err == nil {
			rev = r
		}
		out = append(out, kept{revision: rev, version: versionOf(rs.Spec.Template, s.Container), image: imageOf(rs.Spec.Template, s.Container)})
	}
	slices.SortStableFunc(out, func(a, b kept) int { return b.revision - a.revision })
	seen := map[string]bool{}
	uniq := out[:0]
	for _, k := range out {
		if !seen[k.version] {
			seen[k.version] = true
			uniq = append(uniq, k)
		}
	}
	return uniq
}
