package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// traffic is a bounded curl loop against the production port: one request
// every 20 ms on loopback, each counted by the phase it was sent in.
type traffic struct {
	mu     sync.Mutex
	phase  string
	sent   map[string]int
	failed map[string][]string
	stop   context.CancelFunc
	done   chan struct{}
}

func startTraffic(t *testing.T, url string) *traffic {
	t.Helper()
	curl := need(t, "curl", "curl")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // bounded whatever happens
	tr := &traffic{phase: "warm-up", sent: map[string]int{}, failed: map[string][]string{}, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			tr.mu.Lock()
			phase := tr.phase
			tr.mu.Unlock()
			// A fresh connection per request, as a new visitor makes.
			out, err := exec.CommandContext(ctx, curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", url).CombinedOutput()
			if ctx.Err() != nil {
				return
			}
			tr.mu.Lock()
			tr.sent[phase]++
			if code := strings.TrimSpace(string(out)); err != nil || code != "200" {
				tr.failed[phase] = append(tr.failed[phase], fmt.Sprintf("%s (%v)", code, err))
			}
			tr.mu.Unlock()
		}
	}()
	t.Cleanup(tr.end)
	return tr
}

// enter starts counting requests under a new phase, after the last
// request of the previous one has been counted.
func (tr *traffic) enter(phase string) {
	tr.mu.Lock()
	tr.phase = phase
	tr.mu.Unlock()
}

// waitRequests waits until n more requests of the current phase have been
// answered (or failed), so each phase covers time on both sides of what
// happens in it.
func (tr *traffic) waitRequests(t *testing.T, n int) {
	t.Helper()
	tr.mu.Lock()
	phase, want := tr.phase, tr.sent[tr.phase]+n
	tr.mu.Unlock()
	waitUntil(t, 30*time.Second, fmt.Sprintf("%d requests in phase %q", n, phase), func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.sent[phase] >= want
	})
}

func (tr *traffic) end() {
	tr.stop()
	<-tr.done
}

// report ends the loop and says, per phase, how many requests were sent
// and which failed.
func (tr *traffic) report() (sent map[string]int, failed map[string][]string) {
	tr.end()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.sent, tr.failed
}

// Traffic to the production port never depends on a client or on the
// server: a console that quits, a console killed with -9, a server killed
// with -9 and started again, and a server stopped and started again (an
// upgrade) fail no request.
func TestTrafficNeverDependsOnAClientOrTheServer(t *testing.T) {
	p := newProject(t, "")
	srv := p.serve()
	p.mustRun("promote", "api", "--to", "production", "--version", "v1", "--yes")
	tr := startTraffic(t, fmt.Sprintf("http://127.0.0.1:%d/", p.port))
	settle := func() { tr.waitRequests(t, 20) }
	settle()

	tr.enter("console quits with q")
	c := p.console("ana")
	c.waitFor("production v1", 90*time.Second)
	c.keys("q")
	waitUntil(t, 30*time.Second, "the console to quit", func() bool { return !c.alive() })
	settle()

	tr.enter("console killed with -9")
	c = p.console("bo")
	c.waitFor("production v1", 90*time.Second)
	if err := syscall.Kill(c.pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the killed console's terminal to close", func() bool { return !c.alive() })
	settle()

	tr.enter("server killed with -9 and started again")
	srv.kill9(t)
	settle()
	srv = p.serve()
	settle()

	tr.enter("server stopped and started again")
	p.mustRun("server", "stop")
	select {
	case <-srv.exited:
	case <-time.After(90 * time.Second):
		t.Fatal("the server did not exit after server stop")
	}
	settle()
	p.serve()
	settle()

	sent, failed := tr.report()
	for _, phase := range []string{"console quits with q", "console killed with -9", "server killed with -9 and started again", "server stopped and started again"} {
		t.Logf("%-42s %4d requests, %d failed", phase, sent[phase], len(failed[phase]))
		if sent[phase] < 10 {
			t.Errorf("%s: only %d requests were sent; the loop did not cover it", phase, sent[phase])
		}
		if len(failed[phase]) > 0 {
			t.Errorf("%s: %d of %d requests failed: %v", phase, len(failed[phase]), sent[phase], failed[phase])
		}
	}
	// The releases and the proxy were adopted, not restarted: the server
	// that runs now reports the same release serving, healthy.
	if out := p.mustRun("status"); !strings.Contains(out, "v1") {
		t.Fatalf("status after the restarts:\n%s", out)
	}
}
