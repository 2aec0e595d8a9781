package ssh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/ssh/sshtest"
)

// serviceEnv makes the test binary the service a release runs: the
// artifact is a launcher that execs this binary with the version set.
const serviceEnv = "RIPCORD_SSHTEST_SERVICE"

func TestMain(m *testing.M) {
	if v := os.Getenv(serviceEnv); v != "" {
		serveTestService(v)
		return
	}
	os.Exit(m.Run())
}

// serveTestService answers / with its version and host, and /healthz with
// 200 (500 for a version named "…-unhealthy"), on $LISTEN.
func serveTestService(version string) {
	ln, err := net.Listen("tcp", os.Getenv("LISTEN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if strings.Contains(version, "unhealthy") {
			http.Error(w, "broken on purpose", http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "api %s on %s\n", version, os.Getenv("RIPCORD_HOST"))
	})
	srv := &http.Server{Handler: mux}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		<-sig
		srv.Close()
	}()
	_ = srv.Serve(ln)
}

// restartScript stops the running service (its pid in shared/) and starts
// the current release detached, as a real restart command would.
const restartScript = `pidf="$RIPCORD_SHARED/service.pid"
if [ -f "$pidf" ]; then
  pid=$(cat "$pidf"); kill "$pid" 2>/dev/null
  # Gone, or a zombie nobody has reaped yet (its port is free).
  i=0; while [ "$(cut -d' ' -f3 /proc/$pid/stat 2>/dev/null || echo Z)" != Z ] && [ $i -lt 200 ]; do sleep 0.02; i=$((i+1)); done
fi
setsid ./artifact >>"$RIPCORD_SHARED/service.log" 2>&1 </dev/null &
echo $! >"$pidf"`

type fleet struct {
	t       *testing.T
	lab     *sshtest.Lab
	cfg     Config
	tgt     *Target
	store   string
	digests map[string]string
	listen  map[string]string // host → service address
}

var testRef = core.Ref{Service: "api", Env: "production"}

// newFleet starts a lab of n hosts and a target on it; tweak adjusts the
// config before the target is made.
func newFleet(t *testing.T, n int, tweak func(*Config)) *fleet {
	t.Helper()
	lab := sshtest.Start(t, sshtest.Options{Hosts: n})
	f := &fleet{t: t, lab: lab, store: t.TempDir(), digests: map[string]string{}, listen: map[string]string{}}
	f.cfg = Config{
		Ref: testRef, User: lab.User, Auth: Auth{IdentityFile: lab.ClientKey}, KnownHosts: lab.KnownHosts,
		Restart: restartScript, Health: "http://$LISTEN/healthz", ArtifactStore: f.store,
		StateDir: filepath.Join(t.TempDir(), "state"), ConnectTimeout: 2 * time.Second,
		RestartTimeout: 20 * time.Second, HealthTimeout: 10 * time.Second, StatusInterval: 200 * time.Millisecond,
	}
	for _, h := range lab.Hosts {
		f.listen[h.Name] = serviceAddr(lab, h)
		f.cfg.Hosts = append(f.cfg.Hosts, Host{Name: h.Name, Address: h.Addr, Port: h.Port, Root: h.Root,
			Env: map[string]string{"LISTEN": f.listen[h.Name]}})
	}
	if tweak != nil {
		tweak(&f.cfg)
	}
	t.Cleanup(func() { stopServices(lab) })
	f.open()
	return f
}

// serviceAddr is where a host's service listens: port 8080 on the host's
// own address (each namespace has its own), or a free loopback port.
func serviceAddr(lab *sshtest.Lab, h *sshtest.Host) string {
	if lab.Netns {
		return net.JoinHostPort(h.Addr, "8080")
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(h.Addr, "0"))
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func stopServices(lab *sshtest.Lab) {
	for _, h := range lab.All() {
		b, err := os.ReadFile(filepath.Join(h.Root, "shared", "service.pid"))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func (f *fleet) open() {
	f.t.Helper()
	tgt, err := New(f.cfg, func(l core.LogLine) { f.t.Logf("%s: %s", l.Source, l.Text) })
	if err != nil {
		f.t.Fatal(err)
	}
	f.tgt = tgt
	f.t.Cleanup(func() { _ = tgt.Close() })
}

// artifact writes version's launcher into the artifact store.
func (f *fleet) artifact(version string) core.Release {
	f.t.Helper()
	self, err := os.Executable()
	if err != nil {
		f.t.Fatal(err)
	}
	body := fmt.Sprintf("#!/bin/sh\n%s=%s exec %s \"$@\"\n", serviceEnv, version, self)
	sum := sha256.Sum256([]byte(body))
	hexs := hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(f.store, hexs), []byte(body), 0o644); err != nil {
		f.t.Fatal(err)
	}
	f.digests[version] = "sha256:" + hexs
	return core.Release{Service: "api", Version: version, ArtifactDigest: "sha256:" + hexs}
}

var opSeq sync.Map

func op(name string) core.OpRequest {
	n, _ := opSeq.LoadOrStore(name, 0)
	return core.OpRequest{ID: fmt.Sprintf("%s-%d-%d", name, n, time.Now().UnixNano()), Ref: testRef, Actor: core.Actor{Name: "ana"}}
}

func (f *fleet) deploy(version string, weight int) ([]core.OpEvent, error) {
	var evs []core.OpEvent
	err := f.tgt.Deploy(context.Background(), op("deploy-"+version), f.artifact(version), weight, func(ev core.OpEvent) { evs = append(evs, ev) })
	return evs, err
}

// waitNotRunning waits (up to 10 s) until command no longer runs on host
// i, failing with what still runs there.
func (f *fleet) waitNotRunning(i int, command, what string) {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		names, ok := f.lab.Hosts[i].Commands()
		if !ok || !slices.Contains(names, command) {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s still runs on %s: %v", what, f.lab.Hosts[i].Name, names)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serving asks a host's service which release answers.
func (f *fleet) serving(host string) string {
	f.t.Helper()
	var h *sshtest.Host
	for _, x := range f.lab.Hosts {
		if x.Name == host {
			h = x
		}
	}
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + f.listen[h.Name] + "/")
	if err != nil {
		return "down: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fields := strings.Fields(string(b))
	if len(fields) < 2 {
		return string(b)
	}
	return fields[1]
}

// releases maps each host to the release its status line names.
func releases(s core.TargetStatus) map[string]string {
	out := map[string]string{}
	for _, h := range s.Hosts {
		out[h.Name] = h.Release
	}
	return out
}

func (f *fleet) status() core.TargetStatus {
	f.t.Helper()
	s, err := f.tgt.Status(context.Background(), testRef)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// waitStatus waits for the status to satisfy pred.
func (f *fleet) waitStatus(what string, within time.Duration, pred func(core.TargetStatus) bool) core.TargetStatus {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var last core.TargetStatus
	found := make(chan core.TargetStatus, 1)
	go func() {
		_ = f.tgt.WatchStatus(ctx, testRef, func(s core.TargetStatus) {
			last = s
			if pred(s) {
				select {
				case found <- s:
				default:
				}
				cancel()
			}
		})
	}()
	select {
	case s := <-found:
		return s
	case <-ctx.Done():
		select {
		case s := <-found:
			return s
		default:
		}
		f.t.Fatalf("status never showed %s within %s; last: %+v", what, within, last)
	}
	return last
}

func all(v string, n int) map[string]string {
	out := map[string]string{}
	for i := 1; i <= n; i++ {
		out[fmt.Sprintf("web-%d", i)] = v
	}
	return out
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func messages(evs []core.OpEvent) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString(ev.Message + "\n")
	}
	return b.String()
}

// A canary of 25% on four hosts is one host, and the status says so; the
// other hosts keep serving the stable release; promotion moves the rest;
// a rollback brings every host back, each serving the old release.
func TestCanaryIsOneOfFourHostsThenPromoteThenRollback(t *testing.T) {
	f := newFleet(t, 4, nil)
	if _, err := f.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	s := f.status()
	if s.Current != "v1" || !sameMap(releases(s), all("v1", 4)) {
		t.Fatalf("after the first deploy: %+v", s)
	}
	evs, err := f.deploy("v2", 25)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(messages(evs), "25% requested → 1 of 4 hosts (25%)") {
		t.Fatalf("the operation does not say the real share:\n%s", messages(evs))
	}
	s = f.status()
	want := all("v1", 4)
	want["web-1"] = "v2"
	if s.Current != "v1" || s.Candidate != "v2" || s.Weight != 25 || !sameMap(releases(s), want) {
		t.Fatalf("after the canary: %+v", s)
	}
	for host, v := range want {
		if got := f.serving(host); got != v {
			t.Fatalf("%s serves %q, want %s", host, got, v)
		}
	}
	if err := f.tgt.SetWeight(context.Background(), op("promote"), 100, nil); err != nil {
		t.Fatal(err)
	}
	s = f.status()
	if s.Current != "v2" || s.Candidate != "" || !sameMap(releases(s), all("v2", 4)) {
		t.Fatalf("after promotion: %+v", s)
	}
	if err := f.tgt.Rollback(context.Background(), op("rollback"), "", nil); err != nil {
		t.Fatal(err)
	}
	s = f.status()
	if s.Current != "v1" || !sameMap(releases(s), all("v1", 4)) {
		t.Fatalf("after rollback: %+v", s)
	}
	for host := range want {
		if got := f.serving(host); got != "v1" {
			t.Fatalf("after rollback %s serves %q", host, got)
		}
	}
	// Each host has the Capistrano layout.
	for _, h := range f.lab.Hosts {
		dest, err := os.Readlink(filepath.Join(h.Root, "current"))
		if err != nil || !strings.HasPrefix(dest, "releases/v1-"+strings.TrimPrefix(f.digests["v1"], "sha256:")[:12]) {
			t.Fatalf("%s: current -> %q (%v)", h.Name, dest, err)
		}
		if _, err := os.Stat(filepath.Join(h.Root, "shared")); err != nil {
			t.Fatal(err)
		}
	}
}

// A step's weight maps to hosts: the nearest whole number, at least one,
// and below 100 at least one host stays on the stable release.
func TestWeightMapsToHosts(t *testing.T) {
	for _, c := range []struct{ w, n, want int }{
		{25, 4, 1}, {50, 4, 2}, {75, 4, 3}, {10, 4, 1}, {90, 4, 3}, {100, 4, 4}, {0, 4, 0},
		{33, 3, 1}, {50, 3, 2}, {25, 1, 1}, {10, 20, 2}, {1, 20, 1},
	} {
		if got := HostsFor(c.w, c.n); got != c.want {
			t.Errorf("HostsFor(%d%%, %d hosts) = %d, want %d", c.w, c.n, got, c.want)
		}
	}
}

// Canary hosts go first, whatever their place in the list.
func TestCanaryHostsGoFirst(t *testing.T) {
	f := newFleet(t, 4, func(c *Config) { c.Hosts[2].Canary = true })
	if _, err := f.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	if _, err := f.deploy("v2", 25); err != nil {
		t.Fatal(err)
	}
	want := all("v1", 4)
	want["web-3"] = "v2"
	if got := releases(f.status()); !sameMap(got, want) {
		t.Fatalf("canary went to %v, want web-3", got)
	}
}

// At most max_parallel hosts are restarted at once, measured on the hosts
// themselves: each restart counts itself in and out of a shared file
// under flock and waits (with a deadline) until the bound is reached, so
// the test sees both that the bound holds and that work is parallel.
func TestMaxParallelBoundsHostsWorkedOnAtOnce(t *testing.T) {
	dir := t.TempDir()
	count, peak, lock := filepath.Join(dir, "count"), filepath.Join(dir, "peak"), filepath.Join(dir, "lock")
	for _, p := range []string{count, peak} {
		if err := os.WriteFile(p, []byte("0\n"), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	counting := fmt.Sprintf(`( flock 9; n=$(( $(cat %[1]s) + 1 )); echo $n > %[1]s; [ $n -gt $(cat %[2]s) ] && echo $n > %[2]s ) 9>%[3]s
i=0; while c=$(cat %[1]s); [ "${c:-0}" -lt 2 ] && [ $i -lt 150 ]; do sleep 0.02; i=$((i+1)); done
%[4]s
( flock 9; echo $(( $(cat %[1]s) - 1 )) > %[1]s ) 9>%[3]s`, count, peak, lock, restartScript)
	f := newFleet(t, 4, func(c *Config) { c.MaxParallel = 2; c.Restart = counting })
	if _, err := f.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(peak)
	if got := strings.TrimSpace(string(b)); got != "2" {
		t.Fatalf("restarts running at once peaked at %s, want exactly max_parallel = 2", got)
	}
	if f.tgt.Peak() != 2 {
		t.Fatalf("hosts worked on at once peaked at %d, want 2", f.tgt.Peak())
	}
}

// A host cut off mid-rollout: the promotion stops at it and says so, the
// status shows it unreachable and which host runs what, the rollback
// restores every reachable host and names the one it could not reach;
// once the host is back, the rollback can be run again and finishes.
func TestHostCutOffMidRolloutStopsAndRollbackNamesIt(t *testing.T) {
	f := newFleet(t, 4, func(c *Config) { c.MaxParallel = 1 })
	if _, err := f.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	if _, err := f.deploy("v2", 25); err != nil {
		t.Fatal(err)
	}
	f.lab.Hosts[2].Cut() // web-3
	err := f.tgt.SetWeight(context.Background(), op("promote"), 100, nil)
	if err == nil {
		t.Fatal("promotion with web-3 cut off succeeded")
	}
	addr := f.cfg.Hosts[2].Address + ":" + strconv.Itoa(f.lab.Hosts[2].Port)
	if !strings.Contains(err.Error(), "host web-3 ("+addr+")") || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("promotion error does not name web-3 and the stop: %v", err)
	}
	s := f.status()
	want := map[string]string{"web-1": "v2", "web-2": "v2", "web-3": "v1", "web-4": "v1"}
	if !sameMap(releases(s), want) || s.Current != "v1" || s.Candidate != "v2" || s.Weight != 50 {
		t.Fatalf("after the stopped promotion: %+v", s)
	}
	if s.Hosts[2].State != core.HostUnreachable {
		t.Fatalf("web-3 shows %+v, want unreachable", s.Hosts[2])
	}
	err = f.tgt.Rollback(context.Background(), op("rollback"), "", nil)
	if err == nil || !strings.Contains(err.Error(), "unreachable, check by hand and run the rollback again: web-3") {
		t.Fatalf("rollback with web-3 cut off: %v", err)
	}
	s = f.status()
	for _, h := range []string{"web-1", "web-2", "web-4"} {
		if releases(s)[h] != "v1" || f.serving(h) != "v1" {
			t.Fatalf("after rollback %s runs %s", h, releases(s)[h])
		}
	}
	f.lab.Hosts[2].Restore()
	f.waitStatus("web-3 back", 20*time.Second, func(s core.TargetStatus) bool { return s.Hosts[2].State == core.HostOK })
	if err := f.tgt.Rollback(context.Background(), op("rollback-again"), "v1", nil); err != nil {
		t.Fatalf("rollback once web-3 is back: %v", err)
	}
	if s := f.status(); !sameMap(releases(s), all("v1", 4)) || s.Current != "v1" {
		t.Fatalf("after the second rollback: %+v", s)
	}
}

// A host whose key changed is refused, and the message names the host,
// its address and the known_hosts line to look at.
func TestChangedHostKeyIsRefusedNamingTheLine(t *testing.T) {
	f := newFleet(t, 4, nil)
	if _, err := f.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	f.tgt.Close()
	f.lab.Hosts[2].NewHostKey()
	f.open()
	_, err := f.deploy("v2", 100)
	addr := net.JoinHostPort(f.lab.Hosts[2].Addr, strconv.Itoa(f.lab.Hosts[2].Port))
	want := fmt.Sprintf("host web-3 (%s): host key mismatch — known_hosts line 3", addr)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("deploy to a host with a changed key: %v\nwant it to contain %q", err, want)
	}
	dest, err := os.Readlink(filepath.Join(f.lab.Hosts[2].Root, "current"))
	if err != nil || !strings.HasPrefix(dest, "releases/v1-") {
		t.Fatalf("web-3 was changed although its key was refused: current -> %s (%v)", dest, err)
	}
	s := f.waitStatus("web-3 refused", 10*time.Second, func(s core.TargetStatus) bool { return s.Hosts[2].State == core.HostUnreachable })
	if !strings.Contains(s.Hosts[2].Message, "host key mismatch — known_hosts line 3") {
		t.Fatalf("web-3's status line does not say why: %+v", s.Hosts[2])
	}
}

// A host missing from known_hosts is refused by default, and added on
// first contact only with host_key_policy accept-new.
func TestUnknownHostIsRefusedUnlessAcceptNew(t *testing.T) {
	f := newFleet(t, 1, nil)
	empty := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f.tgt.Close()
	f.cfg.KnownHosts = empty
	f.open()
	if _, err := f.deploy("v1", 100); err == nil || !strings.Contains(err.Error(), "is not in known_hosts") {
		t.Fatalf("strict policy with an unknown host: %v", err)
	}
	f.tgt.Close()
	f.cfg.HostKeyPolicy = HostKeyAcceptNew
	f.open()
	if _, err := f.deploy("v1", 100); err != nil {
		t.Fatalf("accept-new: %v", err)
	}
	b, _ := os.ReadFile(empty)
	if !strings.Contains(string(b), f.lab.Hosts[0].Addr) {
		t.Fatalf("accept-new did not record the host key: %q", b)
	}
}

// A host reachable only through a bastion is deployed to through it (in
// network-namespace mode this machine has no route to it at all).
func TestJumpHost(t *testing.T) {
	lab := sshtest.Start(t, sshtest.Options{Jump: true})
	t.Cleanup(func() { stopServices(lab) })
	store := t.TempDir()
	in := lab.Inner
	listen := serviceAddr(lab, in)
	cfg := Config{
		Ref: testRef, User: lab.User, Auth: Auth{IdentityFile: lab.ClientKey}, KnownHosts: lab.KnownHosts,
		Restart: restartScript, Health: "http://$LISTEN/healthz", ArtifactStore: store,
		StateDir: t.TempDir(), ConnectTimeout: 2 * time.Second,
		Hosts: []Host{{Name: "inner-1", Address: in.Addr, Port: in.Port, Root: in.Root, Env: map[string]string{"LISTEN": listen},
			Jump: net.JoinHostPort(lab.Jump.Addr, strconv.Itoa(lab.Jump.Port))}},
	}
	f := &fleet{t: t, lab: lab, cfg: cfg, store: store, digests: map[string]string{}}
	if lab.Netns {
		direct := cfg
		direct.Hosts = []Host{cfg.Hosts[0]}
		direct.Hosts[0].Jump = ""
		direct.StateDir = t.TempDir()
		f.cfg = direct
		f.open()
		if _, err := f.deploy("v1", 100); err == nil {
			t.Fatal("the inner host was reached without the jump host")
		}
		f.tgt.Close()
		f.cfg = cfg
	}
	f.open()
	if _, err := f.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	s := f.status()
	if releases(s)["inner-1"] != "v1" {
		t.Fatalf("through the jump host: %+v", s)
	}
}

// The same operation ID twice does the work once (the second call replays
// it); a new provider process re-attaches to it; and a host that already
// did its part of an operation is not moved again even when this
// machine's record is gone (the host's marker says so).
func TestOperationsAreIdempotentAndReattachable(t *testing.T) {
	f := newFleet(t, 2, nil)
	if _, err := f.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	rel := f.artifact("v2")
	req := op("deploy-v2")
	var first []core.OpEvent
	if err := f.tgt.Deploy(context.Background(), req, rel, 100, func(ev core.OpEvent) { first = append(first, ev) }); err != nil {
		t.Fatal(err)
	}
	pid := func() string {
		b, _ := os.ReadFile(filepath.Join(f.lab.Hosts[0].Root, "shared", "service.pid"))
		return string(b)
	}
	before := pid()
	var again []core.OpEvent
	if err := f.tgt.Deploy(context.Background(), req, rel, 100, func(ev core.OpEvent) { again = append(again, ev) }); err != nil {
		t.Fatal(err)
	}
	if len(again) != len(first) || pid() != before {
		t.Fatalf("the repeated operation did work again: %d events vs %d, pid %q vs %q", len(again), len(first), pid(), before)
	}
	f.tgt.Close()
	f.open()
	var replay []core.OpEvent
	if err := f.tgt.WatchOperation(context.Background(), req, req.ID, func(ev core.OpEvent) { replay = append(replay, ev) }); err != nil {
		t.Fatal(err)
	}
	if len(replay) != len(first) || !replay[len(replay)-1].Done {
		t.Fatalf("re-attach replayed %d events, want %d ending in done", len(replay), len(first))
	}
	// This machine's records lost: the hosts' markers still stop a second
	// restart.
	f.tgt.Close()
	if err := os.RemoveAll(filepath.Join(f.cfg.StateDir, "ops")); err != nil {
		t.Fatal(err)
	}
	f.open()
	var third []core.OpEvent
	if err := f.tgt.Deploy(context.Background(), req, rel, 100, func(ev core.OpEvent) { third = append(third, ev) }); err != nil {
		t.Fatal(err)
	}
	if pid() != before {
		t.Fatalf("a host restarted again for an operation its marker says it finished:\n%s", messages(third))
	}
}

// keep bounds the releases left on each host.
func TestKeepPrunesOldReleases(t *testing.T) {
	f := newFleet(t, 2, func(c *Config) { c.Keep = 2 })
	for _, v := range []string{"v1", "v2", "v3", "v4", "v5"} {
		if _, err := f.deploy(v, 100); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range f.lab.Hosts {
		entries, err := os.ReadDir(filepath.Join(h.Root, "releases"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		// v5 (current), v4 (what a rollback returns to), and keep = 2.
		if len(names) != 2 || !strings.HasPrefix(names[0], "v4-") || !strings.HasPrefix(names[1], "v5-") {
			t.Fatalf("%s keeps %v, want v4 and v5", h.Name, names)
		}
	}
}

// A release that fails its health check stops the rollout at the canary:
// the host is shown unhealthy on the release, the rest keep the stable
// one, and a rollback restores it.
func TestUnhealthyCanaryStopsTheRollout(t *testing.T) {
	f := newFleet(t, 3, func(c *Config) { c.HealthTimeout = 2 * time.Second })
	if _, err := f.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	_, err := f.deploy("v2-unhealthy", 34)
	if err == nil || !strings.Contains(err.Error(), "host web-1") || !strings.Contains(err.Error(), "status 500") {
		t.Fatalf("deploy of an unhealthy release: %v", err)
	}
	s := f.status()
	if s.Hosts[0].Release != "v2-unhealthy" || s.Hosts[0].State != core.HostUnhealthy || releases(s)["web-2"] != "v1" {
		t.Fatalf("after the failed canary: %+v", s.Hosts)
	}
	if err := f.tgt.Rollback(context.Background(), op("rollback"), "", nil); err != nil {
		t.Fatal(err)
	}
	if got := releases(f.status()); !sameMap(got, all("v1", 3)) {
		t.Fatalf("after rollback: %v", got)
	}
}

// BenchmarkRollbackFourHosts measures a rollback of four hosts: switch
// the link, restart the service and wait for its health, on every host
// in parallel (ns/op, and ms-rollback-4-hosts); ms-rollout-4-hosts is the
// deploy before it (upload, sha256 on the host, switch, restart, health).
//
//	go test ./plugins/ssh/ -run '^$' -bench RollbackFourHosts -benchtime 10x
func BenchmarkRollbackFourHosts(b *testing.B) {
	lab := sshtest.Start(b, sshtest.Options{Hosts: 4})
	store := b.TempDir()
	cfg := Config{
		Ref: testRef, User: lab.User, Auth: Auth{IdentityFile: lab.ClientKey}, KnownHosts: lab.KnownHosts,
		Restart: restartScript, Health: "http://$LISTEN/healthz", ArtifactStore: store,
		StateDir: b.TempDir(), ConnectTimeout: 5 * time.Second, StatusInterval: time.Hour,
	}
	for _, h := range lab.Hosts {
		cfg.Hosts = append(cfg.Hosts, Host{Name: h.Name, Address: h.Addr, Port: h.Port, Root: h.Root,
			Env: map[string]string{"LISTEN": serviceAddr(lab, h)}})
	}
	b.Cleanup(func() { stopServices(lab) })
	tgt, err := New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tgt.Close()
	ctx := context.Background()
	rel := func(v string) core.Release {
		self, _ := os.Executable()
		body := fmt.Sprintf("#!/bin/sh\n%s=%s exec %s \"$@\"\n", serviceEnv, v, self)
		sum := sha256.Sum256([]byte(body))
		h := hex.EncodeToString(sum[:])
		if err := os.WriteFile(filepath.Join(store, h), []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
		return core.Release{Service: "api", Version: v, ArtifactDigest: "sha256:" + h}
	}
	v1, v2 := rel("v1"), rel("v2")
	if err := tgt.Deploy(ctx, op("v1"), v1, 100, nil); err != nil {
		b.Fatal(err)
	}
	var rollout, rollback time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		start := time.Now()
		if err := tgt.Deploy(ctx, op("v2"), v2, 100, nil); err != nil {
			b.Fatal(err)
		}
		rollout += time.Since(start)
		b.StartTimer()
		start = time.Now()
		if err := tgt.Rollback(ctx, op("rollback"), "v1", nil); err != nil {
			b.Fatal(err)
		}
		rollback += time.Since(start)
	}
	b.ReportMetric(float64(rollout.Microseconds())/float64(b.N)/1000, "ms-rollout-4-hosts")
	b.ReportMetric(float64(rollback.Microseconds())/float64(b.N)/1000, "ms-rollback-4-hosts")
}

// An operation cut short on a host (here: given up during its restart)
// leaves the host's marker open: a new provider process shows it on that
// host's line until a later operation finishes there.
func TestInterruptedOperationIsShownOnItsHost(t *testing.T) {
	// v2's restart hangs (and, were it not stopped, would give up without
	// starting anything, so nothing outlives the test).
	slow := `[ "$RIPCORD_RELEASE" = v2 ] && { sleep 20; exit 1; }` + "\n" + restartScript
	f := newFleet(t, 2, func(c *Config) { c.Restart = slow })
	if _, err := f.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := f.tgt.Deploy(ctx, op("deploy-v2"), f.artifact("v2"), 50, func(ev core.OpEvent) {
		if strings.Contains(ev.Message, "restarting") {
			cancel()
		}
	})
	if err == nil {
		t.Fatal("the deploy given up during its restart succeeded")
	}
	// The restart given up on is stopped on the host (its session closed),
	// not left running.
	f.waitNotRunning(0, "sleep", "the restart given up on")
	f.tgt.Close()
	f.open()
	f.waitStatus("the open operation on web-1, web-1 on v2 and web-2 on v1", 20*time.Second, func(s core.TargetStatus) bool {
		return slices.ContainsFunc(s.Problems, func(p string) bool { return strings.HasPrefix(p, `web-1: deploy to v2 stopped at "restarting"`) }) &&
			releases(s)["web-1"] == "v2" && releases(s)["web-2"] == "v1"
	})
	if err := f.tgt.Rollback(context.Background(), op("rollback"), "v1", nil); err != nil {
		t.Fatal(err)
	}
	f.waitStatus("the problem gone once web-1 finished a later operation", 20*time.Second, func(s core.TargetStatus) bool {
		return len(s.Problems) == 0 && releases(s)["web-1"] == "v1"
	})
}

// Lowering the weight moves the last-moved hosts back first; weight 0
// (an abort) returns every host to the stable release and keeps the
// candidate installed.
func TestLowerWeightMovesHostsBack(t *testing.T) {
	f := newFleet(t, 4, nil)
	if _, err := f.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	if _, err := f.deploy("v2", 75); err != nil {
		t.Fatal(err)
	}
	if got := releases(f.status()); !sameMap(got, map[string]string{"web-1": "v2", "web-2": "v2", "web-3": "v2", "web-4": "v1"}) {
		t.Fatalf("at 75%%: %v", got)
	}
	if err := f.tgt.SetWeight(context.Background(), op("down"), 25, nil); err != nil {
		t.Fatal(err)
	}
	if got := releases(f.status()); !sameMap(got, map[string]string{"web-1": "v2", "web-2": "v1", "web-3": "v1", "web-4": "v1"}) {
		t.Fatalf("back at 25%%: %v", got)
	}
	if err := f.tgt.SetWeight(context.Background(), op("abort"), 0, nil); err != nil {
		t.Fatal(err)
	}
	s := f.status()
	if !sameMap(releases(s), all("v1", 4)) || s.Current != "v1" || s.Candidate != "v2" || s.Weight != 0 || !slices.Contains(s.Kept, "v1") {
		t.Fatalf("after weight 0: %+v", s)
	}
	if m, _ := filepath.Glob(filepath.Join(f.lab.Hosts[0].Root, "releases", "v2-*")); len(m) != 1 {
		t.Fatalf("the candidate is no longer installed on web-1: %v", m)
	}
	for _, h := range []string{"web-1", "web-2"} {
		if got := f.serving(h); got != "v1" {
			t.Fatalf("after weight 0 %s serves %s", h, got)
		}
	}
}
