package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// RolloutGVR is Argo Rollouts' Rollout resource.
var RolloutGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}

// inClusterDir is where a pod finds its service account's token and CA.
const inClusterDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// restConfig builds the client configuration from the settings alone: the
// named kubeconfig file and context, or the pod's service account files.
// Neither KUBECONFIG nor KUBERNETES_SERVICE_HOST is read.
func restConfig(s Settings) (*rest.Config, error) {
	var cfg *rest.Config
	if s.InCluster {
		if _, err := os.Stat(filepath.Join(inClusterDir, "token")); err != nil {
			return nil, fmt.Errorf("in_cluster: no service account token at %s (is this running in a pod with a service account?)", inClusterDir)
		}
		cfg = &rest.Config{
			Host:            "https://kubernetes.default.svc",
			BearerTokenFile: filepath.Join(inClusterDir, "token"),
			TLSClientConfig: rest.TLSClientConfig{CAFile: filepath.Join(inClusterDir, "ca.crt")},
		}
	} else {
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: s.Kubeconfig}
		overrides := &clientcmd.ConfigOverrides{CurrentContext: s.Context}
		raw, err := rules.Load()
		if err != nil {
			return nil, fmt.Errorf("reading kubeconfig %s: %w", s.Kubeconfig, err)
		}
		if s.Context != "" {
			if _, ok := raw.Contexts[s.Context]; !ok {
				var names []string
				for n := range raw.Contexts {
					names = append(names, n)
				}
				return nil, fmt.Errorf("context %q is not in %s (it has: %s)", s.Context, s.Kubeconfig, strings.Join(names, ", "))
			}
		} else if raw.CurrentContext == "" {
			return nil, fmt.Errorf("%s names no current context; set context", s.Kubeconfig)
		}
		cfg, err = clientcmd.NewNonInteractiveClientConfig(*raw, s.Context, overrides, rules).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", s.Kubeconfig, err)
		}
	}
	cfg.QPS, cfg.Burst = 50, 100
	cfg.UserAgent = "ripcord-provider-kubernetes"
	return cfg, nil
}

// cluster is the provider's connection to one namespace: clients, and
// informers whose caches every status and every wait reads.
type cluster struct {
	s    Settings
	kube kubernetes.Interface
	dyn  dynamic.Interface

	changed notifier

	startOnce sync.Once
	stop      chan struct{}
	synced    chan struct{} // closed once the caches have synced
	syncs     []cache.InformerSynced
	startFns  []func()

	deployments appslisters.DeploymentLister
	replicaSets appslisters.ReplicaSetLister
	rollouts    cache.GenericLister
}

func newCluster(s Settings) (*cluster, error) {
	cfg, err := restConfig(s)
	if err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	c := &cluster{s: s, kube: kube, dyn: dyn, stop: make(chan struct{}), synced: make(chan struct{})}
	c.changed.init()
	factory := informers.NewSharedInformerFactoryWithOptions(kube, 10*time.Minute, informers.WithNamespace(s.Namespace))
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.changed.notify() },
		UpdateFunc: func(any, any) { c.changed.notify() },
		DeleteFunc: func(any) { c.changed.notify() },
	}
	rsInf := factory.Apps().V1().ReplicaSets()
	_, _ = rsInf.Informer().AddEventHandler(handler)
	c.replicaSets = rsInf.Lister()
	c.syncs = append(c.syncs, rsInf.Informer().HasSynced)
	if s.Mode == ModeArgo {
		dynFactory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 10*time.Minute, s.Namespace, func(o *metav1.ListOptions) {
			o.FieldSelector = "metadata.name=" + s.Workload
		})
		roInf := dynFactory.ForResource(RolloutGVR)
		_, _ = roInf.Informer().AddEventHandler(handler)
		c.rollouts = roInf.Lister()
		c.syncs = append(c.syncs, roInf.Informer().HasSynced)
		c.startFns = append(c.startFns, func() { dynFactory.Start(c.stop) })
	} else {
		depInf := factory.Apps().V1().Deployments()
		_, _ = depInf.Informer().AddEventHandler(handler)
		c.deployments = depInf.Lister()
		c.syncs = append(c.syncs, depInf.Informer().HasSynced)
	}
	c.startFns = append(c.startFns, func() { factory.Start(c.stop) })
	return c, nil
}

// start runs the informers once; ready waits for their first list.
func (c *cluster) start() {
	c.startOnce.Do(func() {
		for _, f := range c.startFns {
			f()
		}
		go func() {
			if cache.WaitForCacheSync(c.stop, c.syncs...) {
				close(c.synced)
				c.changed.notify()
			}
		}()
	})
}

// ready starts the informers and waits until their caches hold the
// namespace's objects.
func (c *cluster) ready(ctx context.Context) error {
	c.start()
	select {
	case <-c.synced:
		return nil
	default:
	}
	// Informers retry a denied list forever; ask once directly so a
	// missing permission is reported instead of waited on.
	probe := make(chan error, 1)
	go func() { probe <- c.probeList(ctx) }()
	for {
		select {
		case <-c.synced:
			return nil
		case err := <-probe:
			if err != nil && !transient(err) && ctx.Err() == nil {
				return err
			}
			probe = nil
		case <-c.stop:
			return errors.New("provider reconfigured")
		case <-ctx.Done():
			return fmt.Errorf("the API server did not answer the first list of namespace %s before the operation's deadline: %w", c.s.Namespace, ctx.Err())
		}
	}
}

// probeList lists what the informers list, once.
func (c *cluster) probeList(ctx context.Context) error {
	opts := metav1.ListOptions{Limit: 1}
	if c.s.Mode == ModeArgo {
		_, err := c.dyn.Resource(RolloutGVR).Namespace(c.s.Namespace).List(ctx, opts)
		return err
	}
	if _, err := c.kube.AppsV1().Deployments(c.s.Namespace).List(ctx, opts); err != nil {
		return err
	}
	_, err := c.kube.AppsV1().ReplicaSets(c.s.Namespace).List(ctx, opts)
	return err
}

func (c *cluster) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
}

// notifier wakes every waiter when an informer sees a change.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) init() { n.ch = make(chan struct{}) }

// wait returns a channel closed at the next change.
func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	close(n.ch)
	n.ch = make(chan struct{})
	n.mu.Unlock()
}

// until evaluates cond on every change the informers see (and every few
// seconds, for conditions that depend on time) until it reports done or
// an error, or ctx ends.
func (c *cluster) until(ctx context.Context, what string, cond func() (done bool, progress string, err error)) error {
	if err := c.ready(ctx); err != nil {
		return err
	}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	last := ""
	for {
		changed := c.changed.wait()
		done, progress, err := cond()
		if err != nil || done {
			return err
		}
		if progress != "" {
			last = progress
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-ctx.Done():
			if last != "" {
				return fmt.Errorf("%s: deadline passed (%s)", what, last)
			}
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
	}
}

// transient reports whether a failed call may succeed when repeated: the
// API server unreachable, restarting, overloaded or timing out. Denials,
// missing objects and invalid requests are not.
func transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		code := status.Status().Code
		return code == 429 || code >= 500 || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err)
	}
	return true // a transport error: refused, reset, EOF
}

// retry runs a write until it succeeds, fails for good, or ctx ends; the
// API server going away mid-operation is waited out until the deadline.
func retry(ctx context.Context, what string, write func(context.Context) error) error {
	backoff := 100 * time.Millisecond
	for {
		err := write(ctx)
		if err == nil || !transient(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: the API server did not answer before the operation's deadline: %w", what, err)
		case <-time.After(backoff):
		}
		if backoff < 2*time.Second {
			backoff *= 2
		}
	}
}
