package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
	"github.com/ripcordhq/ripcord/plugins/ssh/sshtest"
)

// sshWorld is a project deploying the demo's api to a fleet of real sshd
// hosts: each host runs the release it is given (the demo service, which
// reports its errors with the Sentry SDK to the console's embedded
// ingest), and steady traffic runs on every host against its own service.
type sshWorld struct {
	t      *testing.T
	lab    *sshtest.Lab
	dir    string
	config string
	self   string
	ports  map[string]int // host → service port
}

func newSSHWorld(t *testing.T, hosts int, rollout string) *sshWorld {
	t.Helper()
	lab := sshtest.Start(t, sshtest.Options{Hosts: hosts})
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	w := &sshWorld{t: t, lab: lab, dir: t.TempDir(), self: self, ports: map[string]int{}}
	w.config = filepath.Join(w.dir, "ripcord.yaml")
	ingest := freeTCPPort(t, lab.Gateway)
	var hostLines strings.Builder
	for i, h := range lab.Hosts {
		port := 8080
		if !lab.Netns {
			port = freeTCPPort(t, "127.0.0.1") // hosts share this machine's loopback
		}
		w.ports[h.Name] = port
		fmt.Fprintf(&hostLines, "          - { name: %s, address: %q, port: %d, root: %q, env: { PORT: %q, DEMO_DATA: %q } }\n",
			h.Name, h.Addr, h.Port, h.Root, strconv.Itoa(port), filepath.Join(h.Root, "shared"))
		_ = i
	}
	cfg := fmt.Sprintf(`project: shop
services:
  - name: api
environments:
  - name: production
    target:
      provider: ssh
      user: %s
      identity_file: %q
      known_hosts: %q
      max_parallel: 2
      connect_timeout: 2s
      health_timeout: 20s
      status_interval: 1s
      # Stop the running release (its pid is in shared/), start this one
      # detached, in the release directory.
      restart: |
        pidf="$RIPCORD_SHARED/api.pid"
        if [ -f "$pidf" ]; then
          pid=$(cat "$pidf"); kill "$pid" 2>/dev/null
          # Gone, or a zombie nobody has reaped yet (its port is free).
          i=0; while [ "$(cut -d' ' -f3 /proc/$pid/stat 2>/dev/null || echo Z)" != Z ] && [ $i -lt 250 ]; do sleep 0.02; i=$((i+1)); done
        fi
        setsid ./artifact >>"$RIPCORD_SHARED/api.log" 2>&1 </dev/null &
        echo $! >"$pidf"
      health: "http://127.0.0.1:$PORT/healthz"
      env:
        SENTRY_DSN: "http://${RIPCORD_E2E_KEY:-e2ekey}@%s:%d/1"
        SENTRY_ENVIRONMENT: production
      hosts:
%s    errors:
      provider: sentry-ingest
      listen: "%s:%d"
      keys: { "1": "${RIPCORD_E2E_KEY:-e2ekey}" }
    rollout:
%s
    rollback:
      auto: "off"
    confirm: y
`, lab.User, lab.ClientKey, lab.KnownHosts, lab.Gateway, ingest, hostLines.String(), lab.Gateway, ingest, rollout)
	if err := os.WriteFile(w.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.stopServices)
	w.releases("v1.4.2", "v1.5.0")
	return w
}

func freeTCPPort(t *testing.T, addr string) int {
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// releases records builds of the demo service as the pipeline would: the
// artifact (a launcher of this binary's demo service) in the artifact
// store under its sha256, and the release in the state file.
func (w *sshWorld) releases(versions ...string) {
	w.t.Helper()
	ctx := context.Background()
	store := filepath.Join(w.dir, ".ripcord", "pipelines", "api", "artifacts")
	if err := os.MkdirAll(store, 0o755); err != nil {
		w.t.Fatal(err)
	}
	st, err := sqlitestore.Open(ctx, filepath.Join(w.dir, ".ripcord", "state.db"))
	if err != nil {
		w.t.Fatal(err)
	}
	defer st.Close()
	for _, v := range versions {
		body := fmt.Sprintf("#!/bin/sh\nexec %s demo service --version %s \"$@\"\n", w.self, v)
		sum := sha256.Sum256([]byte(body))
		h := hex.EncodeToString(sum[:])
		if err := os.WriteFile(filepath.Join(store, h), []byte(body), 0o644); err != nil {
			w.t.Fatal(err)
		}
		if err := st.PutRelease(ctx, core.Release{Service: "api", Version: v, Branch: "main", ArtifactDigest: "sha256:" + h, BuiltAt: time.Now()}); err != nil {
			w.t.Fatal(err)
		}
	}
}

// cli runs ripcord in its own process, as a person at the bastion would.
func (w *sshWorld) cli(args ...string) (int, string) {
	w.t.Helper()
	cmd := exec.Command(w.self, append(args, "-c", w.config)...)
	cmd.Env = append(os.Environ(), "RIPCORD_TEST_CLI=1", "RIPCORD_ACTOR=ana")
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		w.t.Fatal(err)
	}
	return code, string(out)
}

// traffic sends steady requests to every host's service from the host
// itself (in its namespace), until the test ends.
func (w *sshWorld) traffic() {
	for _, h := range w.lab.Hosts {
		cmd := h.Exec(w.self, "demo", "traffic", "--rate", "20", fmt.Sprintf("http://127.0.0.1:%d", w.ports[h.Name]))
		if !w.lab.Netns {
			cmd = exec.Command(w.self, "demo", "traffic", "--rate", "20", fmt.Sprintf("http://127.0.0.1:%d", w.ports[h.Name]))
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			w.t.Fatal(err)
		}
		w.t.Cleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		})
	}
}

// running is the release each host's service process runs, read from the
// process itself (its pid in shared/, its command line in /proc).
func (w *sshWorld) running() map[string]string {
	out := map[string]string{}
	for _, h := range w.lab.Hosts {
		out[h.Name] = "none"
		b, err := os.ReadFile(filepath.Join(h.Root, "shared", "api.pid"))
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", strings.TrimSpace(string(b)), "cmdline"))
		if err != nil {
			out[h.Name] = "dead"
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		for i, a := range args {
			if a == "--version" && i+1 < len(args) {
				out[h.Name] = args[i+1]
			}
		}
	}
	return out
}

func (w *sshWorld) stopServices() {
	for _, h := range w.lab.Hosts {
		b, err := os.ReadFile(filepath.Join(h.Root, "shared", "api.pid"))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
}

func fleetIs(got map[string]string, want ...string) bool {
	for i, v := range want {
		if got[fmt.Sprintf("web-%d", i+1)] != v {
			return false
		}
	}
	return true
}

// Four real hosts, a 25% canary: one host runs v1.5.0 and the screen says
// which; its errors reach the embedded ingest through the Sentry SDK and
// the verdict calls a spike; r, enter, y in the console rolls every moved
// host back, and each host's service runs v1.4.2 again.
func TestSSHFleetCanarySpikeRollbackInTmux(t *testing.T) {
	w := newSSHWorld(t, 4, "      - weight: 25\n      - { analysis: errors, for: 10m }\n      - weight: 100")
	if code, out := w.cli("promote", "api", "--to", "production", "--version", "v1.4.2", "--full", "--yes"); code != exitOK {
		t.Fatalf("first deploy: exit %d\n%s", code, out)
	}
	if got := w.running(); !fleetIs(got, "v1.4.2", "v1.4.2", "v1.4.2", "v1.4.2") {
		t.Fatalf("after the first deploy the hosts run %v", got)
	}
	w.traffic()
	code, out := w.cli("promote", "api", "--to", "production", "--version", "v1.5.0", "--yes")
	if code != exitOK {
		t.Fatalf("canary: exit %d\n%s", code, out)
	}
	if got := w.running(); !fleetIs(got, "v1.5.0", "v1.4.2", "v1.4.2", "v1.4.2") {
		t.Fatalf("the 25%% canary runs on %v, want web-1 only", got)
	}

	s := newTmuxSession(t, 160, 48, fmt.Sprintf("env RIPCORD_TEST_CLI=1 RIPCORD_ACTOR=ana NO_COLOR=1 %s console -c %s 2>%s", w.self, w.config, filepath.Join(w.dir, "console.log")))
	s.waitFor("web-1  v1.5.0 ok", 60*time.Second)
	s.waitFor("web-4  v1.4.2 ok", 10*time.Second)
	// status, through the same server, lists the fleet's hosts.
	code, out = w.cli("status")
	for _, want := range []string{`host web-1\s+\S+\s+v1\.5\.0\s+ok`, `host web-4\s+\S+\s+v1\.4\.2\s+ok`} {
		if code != exitOK || !regexp.MustCompile(want).MatchString(out) {
			t.Fatalf("status does not list %s: exit %d\n%s", want, code, out)
		}
	}
	scr := s.waitFor("SPIKE", 90*time.Second)
	t.Logf("the console mid-spike:\n%s", scr)
	s.waitOffered("r rollback", 30*time.Second)
	s.keys("r")
	s.waitFor("▸ v1.4.2", 10*time.Second)
	s.keys("Enter")
	s.waitFor("rollback api in production: v1.5.0 → v1.4.2", 10*time.Second)
	s.keys("y")
	s.waitFor("rolled back to v1.4.2", 60*time.Second)
	s.waitFor("web-1  v1.4.2 ok", 30*time.Second)
	if got := w.running(); !fleetIs(got, "v1.4.2", "v1.4.2", "v1.4.2", "v1.4.2") {
		t.Fatalf("after the rollback the hosts run %v", got)
	}
	s.keys("q")
	deadline := time.Now().Add(30 * time.Second)
	for s.alive() {
		if time.Now().After(deadline) {
			t.Fatalf("the console did not exit on q; screen:\n%s", s.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, out = w.cli("audit")
	if code != exitOK || !strings.Contains(out, "rollback") || !strings.Contains(out, "ana") {
		t.Fatalf("audit: exit %d\n%s", code, out)
	}
}

func TestValidateAcceptsTheSSHExample(t *testing.T) {
	code, out, errs := ripcord(t, "validate", "-c", "../../docs/ripcord.ssh.example.yaml")
	if code != exitOK || !strings.Contains(out, "ok (project shop") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
}

// A setting the ssh provider refuses is reported at its place in the file.
func TestSSHSettingErrorIsReportedAtFileLineCol(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ripcord.yaml")
	body := `project: shop
services:
  - name: api
environments:
  - name: production
    target:
      provider: ssh
      user: deploy
      root: /srv/api
      identity_file: /nonexistent/key
      restart: "true"
      health: "true"
      hosts:
        - { name: web-1, address: 10.0.0.11 }
        - { name: web-2, address: 10.0.0.12, port: 70000 }
`
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, errs := ripcord(t, "plugins", "list", "-c", cfg)
	want := cfg + ":15:52: provider ssh: hosts.1.port: 70000 is not a port number"
	if !strings.Contains(errs, want) {
		t.Fatalf("stderr:\n%s\nwant it to contain %q", errs, want)
	}
}

// A host cut off in the middle of a rollout: promoting past the canary
// stops at it, the console shows it unreachable and which host runs what,
// and the rollback brings every reachable host back and names the one it
// could not reach.
func TestSSHFleetHostCutOffMidRolloutInTmux(t *testing.T) {
	w := newSSHWorld(t, 4, "      - weight: 25\n      - pause: judgment\n      - weight: 100")
	if code, out := w.cli("promote", "api", "--to", "production", "--version", "v1.4.2", "--full", "--yes"); code != exitOK {
		t.Fatalf("first deploy: exit %d\n%s", code, out)
	}
	if code, out := w.cli("promote", "api", "--to", "production", "--version", "v1.5.0", "--yes"); code != exitOK {
		t.Fatalf("canary: exit %d\n%s", code, out)
	}
	s := newTmuxSession(t, 160, 48, fmt.Sprintf("env RIPCORD_TEST_CLI=1 RIPCORD_ACTOR=ana NO_COLOR=1 %s console -c %s 2>%s", w.self, w.config, filepath.Join(w.dir, "console.log")))
	s.waitFor("web-1  v1.5.0 ok", 60*time.Second)
	w.lab.Hosts[2].Cut() // web-3
	s.waitFor("web-3  v1.4.2 unreachable", 30*time.Second)
	s.waitOffered("p promote", 30*time.Second)
	s.keys("p")
	s.waitFor("promote api in production", 10*time.Second)
	s.keys("y")
	scr := s.waitFor("rollout of v1.5.0 degraded: set v1.5.0 weight to 100%", 60*time.Second)
	s.waitFor("✗ 100%", 10*time.Second)
	t.Logf("the console after the stopped promotion:\n%s", scr)
	s.waitFor("web-2  v1.5.0", 10*time.Second)
	if got := w.running(); got["web-1"] != "v1.5.0" || got["web-2"] != "v1.5.0" || got["web-4"] != "v1.4.2" {
		t.Fatalf("after the stopped promotion the hosts run %v", got)
	}
	s.waitOffered("r rollback", 30*time.Second) // once the stopped promotion has let go of the lock
	s.keys("r")
	s.waitFor("▸ v1.4.2", 10*time.Second)
	s.keys("Enter")
	s.waitFor("rollback api in production: v1.5.0 → v1.4.2", 10*time.Second)
	s.keys("y")
	s.waitFor("rollback api/production failed", 60*time.Second)
	scr = s.waitFor("web-2  v1.4.2 ok", 30*time.Second)
	t.Logf("the console after the rollback:\n%s", scr)
	if !strings.Contains(scr, "web-3  v1.4.2 unreachable") {
		t.Fatalf("the console does not show web-3 unreachable after the rollback:\n%s", scr)
	}
	if got := w.running(); got["web-1"] != "v1.4.2" || got["web-2"] != "v1.4.2" || got["web-4"] != "v1.4.2" {
		t.Fatalf("after the rollback the reachable hosts run %v", got)
	}
	s.keys("q")
	deadline := time.Now().Add(30 * time.Second)
	for s.alive() {
		if time.Now().After(deadline) {
			t.Fatalf("the console did not exit on q; screen:\n%s", s.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The audit log keeps the whole answer for the person who follows up.
	code, out := w.cli("audit")
	if code != exitOK || !strings.Contains(out, "unreachable, check by hand and run the rollback again: web-3") {
		t.Fatalf("audit: exit %d\n%s", code, out)
	}
}
