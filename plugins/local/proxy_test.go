package local

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// requests sends a request every 5 ms to addr on a fresh connection until
// stopped, and counts the answers that were not a release's 200.
type requests struct {
	mu     sync.Mutex
	sent   int
	failed []string
	stop   chan struct{}
	done   chan struct{}
}

func sendRequests(addr string) *requests {
	r := &requests{stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	go func() {
		defer close(r.done)
		for {
			select {
			case <-r.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			resp, err := client.Get("http://" + addr + "/")
			r.mu.Lock()
			r.sent++
			switch {
			case err != nil:
				r.failed = append(r.failed, err.Error())
			case resp.StatusCode != http.StatusOK:
				r.failed = append(r.failed, resp.Status)
			}
			r.mu.Unlock()
			if err == nil {
				resp.Body.Close()
			}
		}
	}()
	return r
}

// waitSent waits until n more requests have been answered.
func (r *requests) waitSent(t *testing.T, n int) {
	t.Helper()
	r.mu.Lock()
	want := r.sent + n
	r.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r.mu.Lock()
		sent := r.sent
		r.mu.Unlock()
		if sent >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests answered within 20s", sent, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *requests) end() (int, []string) {
	close(r.stop)
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent, r.failed
}

func readProxyRecord(t *testing.T, root string) proxyRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, proxyRecordName))
	if err != nil {
		t.Fatal(err)
	}
	var rec proxyRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// The proxy is a process of its own: while no target runs the public port
// answers, and the next target adopts the proxy (same process) and steers
// it. Not one request fails.
func TestProxyOutlivesItsTargetAndIsAdopted(t *testing.T) {
	base := t.TempDir()
	root, store := filepath.Join(base, "root"), filepath.Join(base, "artifacts")
	digests := map[string]string{"v1": putArtifact(t, store, "v1"), "v2": putArtifact(t, store, "v2")}
	cfg := testConfig(root, store, 0)
	tgt, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tgt.Close() })
	deploy := func(v string) {
		t.Helper()
		rel := core.Release{Service: "api", Version: v, ArtifactDigest: digests[v]}
		if err := tgt.Deploy(context.Background(), core.OpRequest{ID: "deploy-" + v, Ref: ref}, rel, 100, nil); err != nil {
			t.Fatal(err)
		}
	}
	deploy("v1")
	proxy := readProxyRecord(t, root)
	if proxy.Pid == os.Getpid() {
		t.Fatal("the proxy runs in the provider's process")
	}
	reqs := sendRequests(tgt.Addr())
	reqs.waitSent(t, 20)

	tgt.Detach()
	reqs.waitSent(t, 50) // nobody manages the environment now

	cfg.Port = readPort(t, tgt.Addr())
	tgt, err = New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := tgt.Status(context.Background(), ref)
	if !slices.ContainsFunc(st.Problems, func(p string) bool { return strings.Contains(p, "was still running") && strings.Contains(p, "adopted") }) {
		t.Fatalf("the new target does not say it adopted the proxy: %q", st.Problems)
	}
	if again := readProxyRecord(t, root); again.Pid != proxy.Pid {
		t.Fatalf("the proxy was restarted (pid %d, then %d), not adopted", proxy.Pid, again.Pid)
	}
	reqs.waitSent(t, 20)
	deploy("v2")
	reqs.waitSent(t, 20)
	sent, failed := reqs.end()
	if len(failed) > 0 {
		t.Fatalf("%d of %d requests failed while the target went and came: %v", len(failed), sent, failed)
	}
	resp, err := http.Get("http://" + tgt.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get(ReleaseHeader); got != "v2" {
		t.Fatalf("after the adopted proxy was steered to v2, %s answers", got)
	}
}

func readPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// A proxy that dies is started again by the target, on the same port and
// with the same route.
func TestKilledProxyIsStartedAgain(t *testing.T) {
	e := newEnv(t, 5)
	if err := e.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	dead := readProxyRecord(t, e.root)
	if err := syscall.Kill(dead.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if rec := readProxyRecord(t, e.root); rec.Pid != dead.Pid {
			if rec.Listen != dead.Listen {
				t.Fatalf("the new proxy listens on %s, the old one on %s", rec.Listen, dead.Listen)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed proxy was not started again")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := e.serving(); got != "v1" {
		t.Fatalf("after the restart %s serves, want v1", got)
	}
	st, _ := e.tgt.Status(context.Background(), ref)
	if !slices.ContainsFunc(st.Problems, func(p string) bool { return strings.Contains(p, "the proxy stopped answering") }) {
		t.Fatalf("the restart is not reported: %q", st.Problems)
	}
}

// One target manages a root: a second one is refused, saying why.
func TestSecondTargetOnARootIsRefused(t *testing.T) {
	e := newEnv(t, 5)
	_, err := New(testConfig(e.root, e.store, 0), nil)
	if err == nil || !strings.Contains(err.Error(), "another ripcord process manages "+e.root) {
		t.Fatalf("second target: %v", err)
	}
}

// Close ends the environment's traffic: the proxy stops with the releases.
func TestCloseStopsTheProxy(t *testing.T) {
	e := newEnv(t, 5)
	if err := e.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	rec := readProxyRecord(t, e.root)
	if err := e.tgt.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(rec.Pid, 0); err == nil {
		deadline := time.Now().Add(5 * time.Second)
		for syscall.Kill(rec.Pid, 0) == nil {
			if time.Now().After(deadline) {
				t.Fatalf("the proxy (pid %d) runs on after Close", rec.Pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if _, err := http.Get("http://" + e.tgt.Addr() + "/"); err == nil {
		t.Fatal("the public port still answers after Close")
	}
}
