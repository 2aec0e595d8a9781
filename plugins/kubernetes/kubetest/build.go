package kubetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// BuildOptions tune Build.
type BuildOptions struct {
	// Argo also builds the Argo Rollouts controller and copies its CRDs.
	Argo bool
	// Log receives the build's progress and the go tool's output.
	Log io.Writer
}

// Build builds whatever of the cache directory is missing: the control
// plane and etcd from the cluster wrapper module, kwok with `go install`,
// kwok's stages, and (with Argo) the Argo Rollouts controller and its CRDs.
// Each part is built into a temporary directory and renamed into place, so
// an interrupted build leaves nothing half-written; parts already present
// are reused.
func Build(ctx context.Context, opts BuildOptions) (Tools, error) {
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	tools, root, err := Locate()
	if err != nil {
		return tools, err
	}
	if err := os.MkdirAll(filepath.Join(tools.Dir, "bin"), 0o755); err != nil {
		return tools, err
	}
	fmt.Fprintf(log, "kubetest: cache %s\n", tools.Dir)
	ldflags := versionLDFlags()

	step := func(name string, done func() bool, run func(tmp string) error) error {
		if done() {
			fmt.Fprintf(log, "kubetest: %s: cached\n", name)
			return nil
		}
		start := time.Now()
		fmt.Fprintf(log, "kubetest: %s: building\n", name)
		tmp, err := os.MkdirTemp(tools.Dir, ".build-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if err := run(tmp); err != nil {
			return fmt.Errorf("building %s: %w", name, err)
		}
		fmt.Fprintf(log, "kubetest: %s: built in %s\n", name, time.Since(start).Round(time.Second))
		return nil
	}

	cluster := filepath.Join(root, wrappersDir, "cluster")
	err = step("etcd, kube-apiserver, kube-controller-manager, kube-scheduler", func() bool {
		return isFile(tools.Bin("etcd")) && isFile(tools.Bin("kube-apiserver")) && isFile(tools.Bin("kube-controller-manager")) && isFile(tools.Bin("kube-scheduler"))
	}, func(tmp string) error {
		if err := goCmd(ctx, log, cluster, nil, "build", "-trimpath", "-ldflags", ldflags, "-o", tmp+string(os.PathSeparator), "./..."); err != nil {
			return err
		}
		return moveAll(tmp, filepath.Join(tools.Dir, "bin"), "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
	})
	if err != nil {
		return tools, err
	}

	err = step("kwok "+KwokVersion, func() bool { return isFile(tools.Bin("kwok")) }, func(tmp string) error {
		// go install pkg@version builds in module-aware mode from the
		// module's own go.mod, whatever directory it runs in.
		if err := goCmd(ctx, log, tmp, []string{"GOBIN=" + tmp}, "install", "-trimpath", "-ldflags", "-s -w", kwokModule+"/cmd/kwok@"+KwokVersion); err != nil {
			return err
		}
		return moveAll(tmp, filepath.Join(tools.Dir, "bin"), "kwok")
	})
	if err != nil {
		return tools, err
	}

	err = step("kwok stages", func() bool { return isFile(tools.StagesFile()) }, func(tmp string) error {
		dir, err := moduleDir(ctx, kwokModule, KwokVersion)
		if err != nil {
			return err
		}
		var all bytes.Buffer
		for _, sub := range []string{"node/fast/node-initialize.yaml", "node/heartbeat/node-heartbeat.yaml", "pod/fast/pod-ready.yaml", "pod/fast/pod-complete.yaml", "pod/fast/pod-delete.yaml"} {
			data, err := os.ReadFile(filepath.Join(dir, "kustomize", "stage", sub))
			if err != nil {
				return err
			}
			all.WriteString("---\n")
			all.Write(data)
			if !bytes.HasSuffix(data, []byte("\n")) {
				all.WriteByte('\n')
			}
		}
		return writeAtomic(tools.StagesFile(), all.Bytes())
	})
	if err != nil || !opts.Argo {
		return tools, err
	}

	argo := filepath.Join(root, wrappersDir, "argo")
	err = step("Argo Rollouts controller "+ArgoVersion, func() bool { return isFile(tools.Bin(ArgoBinary)) }, func(tmp string) error {
		flags := "-s -w -X github.com/argoproj/argo-rollouts/utils/version.version=" + strings.TrimPrefix(ArgoVersion, "v")
		if err := goCmd(ctx, log, argo, nil, "build", "-trimpath", "-ldflags", flags, "-o", tmp+string(os.PathSeparator), "./..."); err != nil {
			return err
		}
		return moveAll(tmp, filepath.Join(tools.Dir, "bin"), ArgoBinary)
	})
	if err != nil {
		return tools, err
	}
	err = step("Argo Rollouts CRDs", func() bool { return isFile(filepath.Join(tools.ArgoCRDDir(), "rollout-crd.yaml")) }, func(tmp string) error {
		dir, err := moduleDir(ctx, argoModule, ArgoVersion)
		if err != nil {
			return err
		}
		crds, err := filepath.Glob(filepath.Join(dir, "manifests", "crds", "*-crd.yaml"))
		if err != nil || len(crds) == 0 {
			return fmt.Errorf("no CRDs in %s/manifests/crds", dir)
		}
		out := filepath.Join(tmp, "crds")
		if err := os.Mkdir(out, 0o755); err != nil {
			return err
		}
		for _, f := range crds {
			data, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(out, filepath.Base(f)), data, 0o644); err != nil {
				return err
			}
		}
		_ = os.RemoveAll(tools.ArgoCRDDir())
		return os.Rename(out, tools.ArgoCRDDir())
	})
	return tools, err
}

// versionLDFlags stamps the version the components report (otherwise they
// say v0.0.0-master and refuse version skew checks).
func versionLDFlags() string {
	v := KubernetesVersion
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	var b strings.Builder
	b.WriteString("-s -w")
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		fmt.Fprintf(&b, " -X %s.gitVersion=%s -X %s.gitMajor=%s -X %s.gitMinor=%s -X %s.gitTreeState=clean", pkg, v, pkg, parts[0], pkg, parts[1], pkg)
	}
	return b.String()
}

func goCmd(ctx context.Context, log io.Writer, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s (in %s): %w", strings.Join(args, " "), dir, err)
	}
	return nil
}

// moduleDir downloads a module (a no-op when cached) and returns its
// directory in the module cache.
func moduleDir(ctx context.Context, path, version string) (string, error) {
	tmp, err := os.MkdirTemp("", "kubetest-mod-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", path+"@"+version)
	cmd.Dir = tmp
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w: %s", path, version, err, strings.TrimSpace(out.String()+errOut.String()))
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out.Bytes(), &info); err != nil {
		return "", err
	}
	if info.Error != "" || info.Dir == "" {
		return "", fmt.Errorf("go mod download %s@%s: %s", path, version, info.Error)
	}
	return info.Dir, nil
}

func moveAll(from, to string, names ...string) error {
	for _, n := range names {
		if err := os.Rename(filepath.Join(from, n), filepath.Join(to, n)); err != nil {
			return err
		}
	}
	return nil
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
