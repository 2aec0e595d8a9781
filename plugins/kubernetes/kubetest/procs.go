package kubetest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
)

// proc is one component process.
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // set before done closes
}

// spawn starts a component with its output in DIR/NAME.log. The process
// dies with the test binary (Pdeathsig) even if cleanup never runs.
func (c *Cluster) spawn(name, bin string, args ...string) {
	c.t.Helper()
	logPath := filepath.Join(c.Dir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = c.Dir
	cmd.Env = []string{"HOME=" + c.Dir, "PATH=/usr/bin:/bin", "TMPDIR=" + c.Dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		c.t.Fatalf("kubetest: starting %s: %v", name, err)
	}
	p := &proc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs[name] = p
	c.mu.Unlock()
}

// exited reports an error when the named component is no longer running.
func (c *Cluster) exited(name string) error {
	c.mu.Lock()
	p := c.procs[name]
	c.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%s was never started", name)
	}
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v", name, p.err)
	default:
		return nil
	}
}

// kill stops a component with SIGKILL (its whole process group) and waits
// for it to be gone.
func (c *Cluster) kill(name string) {
	c.mu.Lock()
	p := c.procs[name]
	delete(c.procs, name)
	c.mu.Unlock()
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		c.t.Errorf("kubetest: %s (pid %d) did not exit after SIGKILL", name, p.cmd.Process.Pid)
	}
}

// stopAll kills every component, newest first, and reports the logs of a
// failed test.
func (c *Cluster) stopAll() {
	if c.t.Failed() {
		c.t.Log(c.logTails())
	}
	for _, name := range []string{ArgoBinary, "kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"} {
		c.kill(name)
	}
}

// logTails is the end of every component's log, for a failure message.
func (c *Cluster) logTails() string {
	files, _ := filepath.Glob(filepath.Join(c.Dir, "*.log"))
	sort.Strings(files)
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		fmt.Fprintf(&b, "--- %s (last %d lines)\n%s\n", filepath.Base(f), len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// ApplyCRD creates the CustomResourceDefinitions in a YAML file and waits
// until each is Established.
func (c *Cluster) ApplyCRD(ctx context.Context, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(c.AdminConfig)
	if err != nil {
		return err
	}
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var obj unstructured.Unstructured
		if err := dec.Decode(&obj.Object); err != nil {
			if err.Error() == "EOF" {
				return nil
			}
			return err
		}
		if obj.Object == nil || obj.GetKind() != "CustomResourceDefinition" {
			continue
		}
		if _, err := dyn.Resource(crdGVR).Create(ctx, &obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		name := obj.GetName()
		c.waitFor(ctx, "CRD "+name+" to be established", func() (bool, error) {
			got, err := dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
			for _, cond := range conds {
				m, _ := cond.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		})
	}
}
