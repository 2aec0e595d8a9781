// Package kubetest runs a real Kubernetes control plane for the kubernetes
// provider's tests: etcd, kube-apiserver (token auth, RBAC on),
// kube-controller-manager, kube-scheduler and kwok (fake nodes whose pods
// become Running and Ready), plus the Argo Rollouts controller when a test
// asks for it, all on loopback ports it chooses.
//
// The binaries are built from the Go module proxy by
//
//	go run ./plugins/kubernetes/kubetest/build
//
// into a cache directory keyed by the component versions, the wrapper
// modules under wrappers/ and the Go version, and reused from there. A test
// that needs them skips with that command when they are missing, and fails
// instead under RIPCORD_REQUIRE_TOOLS=1 (as CI sets it).
package kubetest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// Versions of the components, as the wrapper modules pin them.
const (
	KubernetesVersion = "v1.37.2"
	EtcdVersion       = "v3.7.3"
	KwokVersion       = "v0.8.0"
	ArgoVersion       = "v1.10.1"
)

// Module paths the build fetches data files from (kwok's stages, Argo's CRDs).
const (
	kwokModule = "sigs.k8s.io/kwok"
	argoModule = "github.com/argoproj/argo-rollouts"
)

// BuildCommand is what a developer runs to build the binaries.
const BuildCommand = "go run ./plugins/kubernetes/kubetest/build"

// wrappersDir is where the wrapper modules live, relative to the repository.
const wrappersDir = "plugins/kubernetes/kubetest/wrappers"

// Cluster binaries, in the order they start.
var clusterBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// ArgoBinary is the Argo Rollouts controller.
const ArgoBinary = "rollouts-controller"

// Tools is a built cache directory.
type Tools struct {
	Dir string // the cache directory: bin/, kwok-stages.yaml, argo-crds/
}

// Bin returns the path of a built binary.
func (t Tools) Bin(name string) string { return filepath.Join(t.Dir, "bin", name) }

// StagesFile is kwok's stage configuration (nodes and pods become ready).
func (t Tools) StagesFile() string { return filepath.Join(t.Dir, "kwok-stages.yaml") }

// ArgoCRDDir holds the Argo Rollouts CRDs as YAML files.
func (t Tools) ArgoCRDDir() string { return filepath.Join(t.Dir, "argo-crds") }

// HasCluster reports whether every control-plane binary and kwok's stages
// are built.
func (t Tools) HasCluster() bool {
	for _, b := range clusterBinaries {
		if !isFile(t.Bin(b)) {
			return false
		}
	}
	return isFile(t.StagesFile())
}

// HasArgo reports whether the Argo Rollouts controller and its CRDs are built.
func (t Tools) HasArgo() bool {
	return isFile(t.Bin(ArgoBinary)) && isFile(filepath.Join(t.ArgoCRDDir(), "rollout-crd.yaml"))
}

// Locate finds the repository from the working directory (tests run in
// their package's directory, the build command at the top) and returns the
// cache directory for the current wrapper modules and Go version. Nothing
// is built.
func Locate() (Tools, string, error) {
	root, err := RepoRoot()
	if err != nil {
		return Tools{}, "", err
	}
	key, err := cacheKey(root)
	if err != nil {
		return Tools{}, "", err
	}
	base, err := cacheBase()
	if err != nil {
		return Tools{}, "", err
	}
	return Tools{Dir: filepath.Join(base, key)}, root, nil
}

// cacheBase is ~/.cache/ripcord/kube (or $XDG_CACHE_HOME/ripcord/kube): it
// survives `go clean -cache` and is shared by every checkout on the machine.
func cacheBase() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the cache directory: %w", err)
	}
	return filepath.Join(dir, "ripcord", "kube"), nil
}

// RepoRoot walks up from the working directory to the checkout that holds
// the wrapper modules.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isFile(filepath.Join(dir, wrappersDir, "cluster", "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("kubetest: not inside a ripcord checkout (no " + wrappersDir + ")")
		}
		dir = parent
	}
}

// cacheKey names the build: the versions, the Go toolchain and platform,
// and a digest of every file of the wrapper modules (a changed main or
// go.sum builds afresh).
func cacheKey(root string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s %s %s %s %s/%s\n", KubernetesVersion, EtcdVersion, KwokVersion, ArgoVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	base := filepath.Join(root, wrappersDir)
	var files []string
	err := filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if !d.IsDir() && (name == "go.mod" || name == "go.sum" || strings.HasSuffix(name, ".go")) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("kubetest: reading the wrapper modules: %w", err)
	}
	sort.Strings(files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(base, f)
		fmt.Fprintf(h, "%s %d\n", filepath.ToSlash(rel), len(data))
		h.Write(data)
	}
	return "k8s-" + strings.TrimPrefix(KubernetesVersion, "v") + "-" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
