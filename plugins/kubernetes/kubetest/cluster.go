package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options say what a test needs of its cluster.
type Options struct {
	// Argo also installs the Argo Rollouts CRDs and runs its controller.
	Argo bool
	// NeverReady lists container images whose pods kwok never makes Ready:
	// a release that cannot become healthy.
	NeverReady []string
}

// Cluster is a running control plane. Everything it started is stopped by
// the test's cleanup; nothing outlives the test.
type Cluster struct {
	Tools Tools
	Dir   string
	// Server is the API server's URL; CAFile its CA.
	Server, CAFile string
	// AdminKubeconfig is a kubeconfig file of a cluster administrator,
	// context "admin".
	AdminKubeconfig string
	// Admin is a client with the same rights.
	Admin *kubernetes.Clientset
	// AdminConfig is the REST config behind Admin.
	AdminConfig *rest.Config

	t     testing.TB
	pki   pki
	ports map[string]int
	token map[string]string // component → bearer token

	mu    sync.Mutex
	procs map[string]*proc
}

// Require returns the built tools, or skips the test with the command that
// builds them (fails instead under RIPCORD_REQUIRE_TOOLS=1).
func Require(t testing.TB, argo bool) Tools {
	t.Helper()
	tools, _, err := Locate()
	if err != nil {
		t.Fatal(err)
	}
	missing := !tools.HasCluster()
	what := "the Kubernetes control plane, etcd and kwok"
	if argo && !tools.HasArgo() {
		missing, what = true, "the Argo Rollouts controller"
	}
	if missing {
		msg := fmt.Sprintf("%s are not built for this checkout (want %s); build them once with: %s", what, tools.Dir, BuildCommand)
		if os.Getenv("RIPCORD_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return tools
}

// Start runs a control plane for the test and waits until it can run
// pods: etcd healthy, the API server ready, the controller manager and
// scheduler healthy, the default service account made, a kwok node Ready
// (and with Argo, its CRDs established and its controller healthy).
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	tools := Require(t, opts.Argo)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := &Cluster{Tools: tools, Dir: t.TempDir(), t: t, ports: map[string]int{}, token: map[string]string{}, procs: map[string]*proc{}}
	t.Cleanup(c.stopAll)
	var err error
	if c.pki, err = newPKI(c.Dir); err != nil {
		t.Fatalf("kubetest: certificates: %v", err)
	}
	c.CAFile = c.pki.CACert
	if err := c.choosePorts("etcd", "etcd-peer", "apiserver", "kcm", "scheduler", "kwok", "argo-metrics", "argo-healthz"); err != nil {
		t.Fatal(err)
	}
	c.Server = fmt.Sprintf("https://127.0.0.1:%d", c.ports["apiserver"])
	if err := c.writeTokens(); err != nil {
		t.Fatal(err)
	}
	c.AdminKubeconfig = c.writeKubeconfig("admin", c.token["admin"])
	if c.AdminConfig, err = clientcmd.BuildConfigFromFlags("", c.AdminKubeconfig); err != nil {
		t.Fatal(err)
	}
	c.AdminConfig.QPS, c.AdminConfig.Burst = 200, 400
	c.Admin = kubernetes.NewForConfigOrDie(c.AdminConfig)

	c.startEtcd(ctx)
	c.StartAPIServer()
	c.startComponent(ctx, "kube-controller-manager", c.ports["kcm"],
		"--kubeconfig="+c.kubeconfigFor("kcm"), "--authentication-kubeconfig="+c.kubeconfigFor("kcm"),
		"--authorization-kubeconfig="+c.kubeconfigFor("kcm"), "--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(c.ports["kcm"]), "--cert-dir="+filepath.Join(c.Dir, "kcm-certs"),
		"--leader-elect=false", "--use-service-account-credentials",
		"--service-account-private-key-file="+c.pki.SAKey, "--root-ca-file="+c.pki.CACert,
		"--cluster-signing-cert-file="+c.pki.CACert, "--cluster-signing-key-file="+c.pki.CAKey,
		"--concurrent-deployment-syncs=5", "--concurrent-replicaset-syncs=5")
	c.startComponent(ctx, "kube-scheduler", c.ports["scheduler"],
		"--kubeconfig="+c.kubeconfigFor("scheduler"), "--authentication-kubeconfig="+c.kubeconfigFor("scheduler"),
		"--authorization-kubeconfig="+c.kubeconfigFor("scheduler"), "--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(c.ports["scheduler"]), "--cert-dir="+filepath.Join(c.Dir, "scheduler-certs"),
		"--leader-elect=false")
	c.startKwok(ctx, opts.NeverReady)
	c.WaitServiceAccount(ctx, "default", "default")
	if opts.Argo {
		c.startArgo(ctx)
	}
	return c
}

func (c *Cluster) fatalf(format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf("kubetest: "+format+"\n%s", append(args, c.logTails())...)
}

// choosePorts picks free loopback ports below the ephemeral range (which is
// busy with other programs' outgoing connections on shared machines).
func (c *Cluster) choosePorts(names ...string) error {
	used := map[int]bool{}
	for _, name := range names {
		for try := 0; ; try++ {
			if try == 200 {
				return errors.New("kubetest: no free loopback port in 20000-32000")
			}
			n, _ := rand.Int(rand.Reader, big.NewInt(12000))
			port := 20000 + int(n.Int64())
			if used[port] {
				continue
			}
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				continue
			}
			_ = l.Close()
			used[port] = true
			c.ports[name] = port
			break
		}
	}
	return nil
}

func randomToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// writeTokens writes the static token file: an administrator, the
// controller manager and scheduler under their bootstrap RBAC identities,
// kwok and the Argo controller as administrators.
func (c *Cluster) writeTokens() error {
	users := []struct{ name, user, groups string }{
		{"admin", "admin", "system:masters"},
		{"kcm", "system:kube-controller-manager", ""},
		{"scheduler", "system:kube-scheduler", ""},
		{"kwok", "kwok", "system:masters"},
		{"argo", "argo-rollouts", "system:masters"},
	}
	var b strings.Builder
	for i, u := range users {
		c.token[u.name] = randomToken()
		fmt.Fprintf(&b, "%s,%s,%d", c.token[u.name], u.user, 1000+i)
		if u.groups != "" {
			fmt.Fprintf(&b, ",%q", u.groups)
		}
		b.WriteByte('\n')
	}
	return os.WriteFile(filepath.Join(c.Dir, "tokens.csv"), []byte(b.String()), 0o600)
}

func (c *Cluster) kubeconfigFor(component string) string {
	path := filepath.Join(c.Dir, component+".kubeconfig")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	return c.writeKubeconfig(component, c.token[component])
}

// writeKubeconfig writes a kubeconfig whose one context (named like the
// file) authenticates with a bearer token.
func (c *Cluster) writeKubeconfig(name, token string) string {
	c.t.Helper()
	ca, err := os.ReadFile(c.pki.CACert)
	if err != nil {
		c.t.Fatal(err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthorityData: ca}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: "test", AuthInfo: name, Namespace: "default"}
	cfg.CurrentContext = name
	path := filepath.Join(c.Dir, name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		c.t.Fatal(err)
	}
	return path
}

func (c *Cluster) startEtcd(ctx context.Context) {
	c.t.Helper()
	client := fmt.Sprintf("http://127.0.0.1:%d", c.ports["etcd"])
	peer := fmt.Sprintf("http://127.0.0.1:%d", c.ports["etcd-peer"])
	c.spawn("etcd", c.Tools.Bin("etcd"), "--name=test", "--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=test="+peer, "--log-level=warn", "--quota-backend-bytes=1073741824")
	c.waitHTTP(ctx, "etcd", client+"/health", "", func(body []byte) bool { return bytes.Contains(body, []byte(`"health":"true"`)) })
}

// StartAPIServer starts (or restarts) the API server on its port and waits
// for /readyz.
func (c *Cluster) StartAPIServer() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c.spawn("kube-apiserver", c.Tools.Bin("kube-apiserver"),
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", c.ports["etcd"]),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(c.ports["apiserver"]),
		"--tls-cert-file="+c.pki.ServingCert, "--tls-private-key-file="+c.pki.ServeKey,
		"--client-ca-file="+c.pki.CACert, "--token-auth-file="+filepath.Join(c.Dir, "tokens.csv"),
		"--authorization-mode=RBAC", "--anonymous-auth=true",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+c.pki.SAPub, "--service-account-signing-key-file="+c.pki.SAKey,
		"--service-cluster-ip-range=10.0.0.0/24", "--endpoint-reconciler-type=none",
		"--cert-dir="+filepath.Join(c.Dir, "apiserver-certs"), "--profiling=false")
	c.waitHTTP(ctx, "kube-apiserver", c.Server+"/readyz", c.token["admin"], nil)
}

// KillAPIServer kills the API server with SIGKILL, as a crash would, and
// waits until it has exited.
func (c *Cluster) KillAPIServer() { c.kill("kube-apiserver") }

func (c *Cluster) startComponent(ctx context.Context, name string, port int, args ...string) {
	c.t.Helper()
	c.spawn(name, c.Tools.Bin(name), args...)
	c.waitHTTP(ctx, name, fmt.Sprintf("https://127.0.0.1:%d/healthz", port), "", nil)
}

// KwokNode is the name of the fake node pods are scheduled on.
const KwokNode = "kwok-node-0"

func (c *Cluster) startKwok(ctx context.Context, neverReady []string) {
	c.t.Helper()
	stages, err := os.ReadFile(c.Tools.StagesFile())
	if err != nil {
		c.t.Fatal(err)
	}
	if len(neverReady) > 0 {
		stages = excludeImagesFromPodReady(stages, neverReady)
	}
	stagesFile := filepath.Join(c.Dir, "kwok-stages.yaml")
	if err := os.WriteFile(stagesFile, stages, 0o644); err != nil {
		c.t.Fatal(err)
	}
	port := strconv.Itoa(c.ports["kwok"])
	c.spawn("kwok", c.Tools.Bin("kwok"), "--kubeconfig="+c.kubeconfigFor("kwok"), "-c", stagesFile,
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--server-address=127.0.0.1:"+port, "--node-port="+port, "--node-ip=127.0.0.1")
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        KwokNode,
		Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
		Labels:      map[string]string{"kubernetes.io/hostname": KwokNode, "kubernetes.io/os": "linux", "type": "kwok"},
	}, Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("250"),
	}}}
	if _, err := c.Admin.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		c.fatalf("creating the kwok node: %v", err)
	}
	c.waitFor(ctx, "the kwok node to be Ready", func() (bool, error) {
		n, err := c.Admin.CoreV1().Nodes().Get(ctx, KwokNode, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return len(n.Spec.Taints) == 0, nil
			}
		}
		return false, nil
	})
}

// excludeImagesFromPodReady adds a selector to kwok's pod-ready stage so
// pods running one of images never become Ready.
func excludeImagesFromPodReady(stages []byte, images []string) []byte {
	docs := bytes.Split(stages, []byte("\n---\n"))
	var quoted []string
	for _, im := range images {
		quoted = append(quoted, "'"+im+"'")
	}
	extra := "    matchExpressions:\n    - key: '.spec.containers.[].image'\n      operator: 'NotIn'\n      values: [" + strings.Join(quoted, ", ") + "]\n"
	for i, d := range docs {
		if bytes.Contains(d, []byte("name: pod-ready\n")) {
			docs[i] = bytes.Replace(d, []byte("    matchExpressions:\n"), []byte(extra), 1)
		}
	}
	return bytes.Join(docs, []byte("\n---\n"))
}

func (c *Cluster) startArgo(ctx context.Context) {
	c.t.Helper()
	crds, err := filepath.Glob(filepath.Join(c.Tools.ArgoCRDDir(), "*.yaml"))
	if err != nil || len(crds) == 0 {
		c.fatalf("no Argo Rollouts CRDs in %s", c.Tools.ArgoCRDDir())
	}
	for _, f := range crds {
		if err := c.ApplyCRD(ctx, f); err != nil {
			c.fatalf("applying %s: %v", filepath.Base(f), err)
		}
	}
	c.spawn(ArgoBinary, c.Tools.Bin(ArgoBinary), "--kubeconfig="+c.kubeconfigFor("argo"),
		"--metrics-port="+strconv.Itoa(c.ports["argo-metrics"]), "--healthz-port="+strconv.Itoa(c.ports["argo-healthz"]))
	c.waitHTTP(ctx, ArgoBinary, fmt.Sprintf("http://127.0.0.1:%d/healthz", c.ports["argo-healthz"]), "", nil)
}

// WaitServiceAccount waits for the controller manager to create a
// namespace's service account (pods are refused until it exists).
func (c *Cluster) WaitServiceAccount(ctx context.Context, namespace, name string) {
	c.t.Helper()
	c.waitFor(ctx, fmt.Sprintf("service account %s/%s", namespace, name), func() (bool, error) {
		_, err := c.Admin.CoreV1().ServiceAccounts(namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
}

// Namespace creates a namespace and waits until pods can be created in it.
func (c *Cluster) Namespace(name string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		c.fatalf("creating namespace %s: %v", name, err)
	}
	c.WaitServiceAccount(ctx, name, "default")
}

// ServiceAccountKubeconfig creates a service account and writes a
// kubeconfig (context named after it) with a token issued for it.
func (c *Cluster) ServiceAccountKubeconfig(namespace, name string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	if _, err := c.Admin.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		c.fatalf("creating service account %s/%s: %v", namespace, name, err)
	}
	secs := int64(3600)
	tok, err := c.Admin.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		c.fatalf("issuing a token for %s/%s: %v", namespace, name, err)
	}
	return c.writeKubeconfig(name, tok.Status.Token)
}

// waitHTTP waits until url answers 200 (and ok accepts the body), failing
// at once if the component exits.
func (c *Cluster) waitHTTP(ctx context.Context, name, url, token string, ok func([]byte) bool) {
	c.t.Helper()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer client.CloseIdleConnections()
	c.waitFor(ctx, name+" at "+url, func() (bool, error) {
		if err := c.exited(name); err != nil {
			return false, err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, nil
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		return resp.StatusCode == http.StatusOK && (ok == nil || ok(body.Bytes())), nil
	})
}

// waitFor polls cond every 25 ms until it holds, fails or ctx ends: a
// wait on a condition with a deadline.
func (c *Cluster) waitFor(ctx context.Context, what string, cond func() (bool, error)) {
	c.t.Helper()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		done, err := cond()
		if err != nil {
			c.fatalf("waiting for %s: %v", what, err)
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
			c.fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}
