package local

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/procid"
)

var svcBin string // the test service, built once in TestMain

var ref = core.Ref{Service: "api", Env: "staging"}

func TestMain(m *testing.M) {
	if os.Getenv("RIPCORD_LOCAL_CRASH_CHILD") == "1" {
		crashChild()
		return
	}
	dir, err := os.MkdirTemp("", "ripcord-local-svc")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	svcBin = filepath.Join(dir, "svc")
	build := exec.Command("go", "build", "-o", svcBin, "./testdata/svc")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build test service:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// putArtifact writes a release artifact into the store and returns its
// digest. The artifact is a launcher exec'ing the real test service, so
// each version has its own bytes and digest.
func putArtifact(t testing.TB, store, version string, flags ...string) string {
	t.Helper()
	script := fmt.Sprintf("#!/bin/sh\nexec %s -version %s %s \"$@\"\n", svcBin, version, strings.Join(flags, " "))
	sum := sha256.Sum256([]byte(script))
	h := hex.EncodeToString(sum[:])
	if err := os.MkdirAll(store, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(store, h), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	return "sha256:" + h
}

func testConfig(root, store string, port int) Config {
	return Config{
		Ref: ref, Root: root, ArtifactStore: store, Port: port,
		Run:            "./artifact -port {{.Port}}",
		Health:         "http://127.0.0.1:{{.Port}}/healthz",
		Grace:          2 * time.Second,
		HealthTimeout:  2 * time.Second,
		StatusInterval: 100 * time.Millisecond,
	}
}

type env struct {
	t       testing.TB
	root    string
	store   string
	tgt     *Target
	digests map[string]string
	client  *http.Client
	n       int
}

func newEnv(t testing.TB, keep int) *env {
	t.Helper()
	base := t.TempDir()
	e := &env{t: t, root: filepath.Join(base, "root"), store: filepath.Join(base, "artifacts"), digests: map[string]string{}}
	for _, v := range []string{"v1", "v2", "v4", "v5"} {
		e.digests[v] = putArtifact(t, e.store, v)
	}
	e.digests["v3"] = putArtifact(t, e.store, "v3", "-fail-health")
	cfg := testConfig(e.root, e.store, 0)
	cfg.Keep = keep
	tgt, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tgt.Close() })
	e.tgt = tgt
	e.client = &http.Client{Timeout: 5 * time.Second}
	return e
}

func (e *env) op() core.OpRequest {
	e.n++
	return core.OpRequest{ID: fmt.Sprintf("op-%d", e.n), Ref: ref}
}

func (e *env) deploy(version string, weight int) error {
	rel := core.Release{Service: "api", Version: version, ArtifactDigest: e.digests[version]}
	return e.tgt.Deploy(context.Background(), e.op(), rel, weight, nil)
}

// serving asks the public port which release answers.
func (e *env) serving() string {
	e.t.Helper()
	resp, err := e.client.Get("http://" + e.tgt.Addr() + "/")
	if err != nil {
		e.t.Fatalf("request through the public port: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		e.t.Fatalf("public port answered %d: %s", resp.StatusCode, body)
	}
	h := resp.Header.Get(ReleaseHeader)
	if got := strings.TrimSpace(string(body)); got != h {
		e.t.Fatalf("header says %s but the service says %s", h, got)
	}
	return h
}

func (e *env) current() string {
	e.t.Helper()
	dest, err := os.Readlink(filepath.Join(e.root, "current"))
	if err != nil {
		e.t.Fatal(err)
	}
	return filepath.Base(dest)
}

func checkEvents(t *testing.T, evs []core.OpEvent) {
	t.Helper()
	if len(evs) < 2 {
		t.Fatalf("want step events and a Done, got %+v", evs)
	}
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, ev.Seq)
		}
		if ev.Done != (i == len(evs)-1) {
			t.Fatalf("Done must be last and only last: %+v", evs)
		}
	}
}

func TestDeploySwapRollback(t *testing.T) {
	e := newEnv(t, 5)
	if err := e.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	if got := e.serving(); got != "v1" {
		t.Fatalf("serving %s, want v1", got)
	}
	if err := e.deploy("v2", 100); err != nil {
		t.Fatal(err)
	}
	if got, cur := e.serving(), e.current(); got != "v2" || cur != "v2" {
		t.Fatalf("serving %s, current %s; want v2", got, cur)
	}

	var evs []core.OpEvent
	op := e.op()
	if err := e.tgt.Rollback(context.Background(), op, "", func(ev core.OpEvent) { evs = append(evs, ev) }); err != nil {
		t.Fatal(err)
	}
	checkEvents(t, evs)
	if evs[len(evs)-1].Err != "" {
		t.Fatalf("rollback failed: %+v", evs[len(evs)-1])
	}
	if got, cur := e.serving(), e.current(); got != "v1" || cur != "v1" {
		t.Fatalf("after rollback serving %s, current %s; want v1", got, cur)
	}
	st, err := e.tgt.Status(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != "v1" || !st.Healthy || strings.Join(st.Kept, ",") != "v2,v1" {
		t.Fatalf("status %+v", st)
	}
	pidBefore := readPidfile(t, e.root, "v1").Pid

	// The same request again replays the recording and does nothing.
	var again []core.OpEvent
	if err := e.tgt.Rollback(context.Background(), op, "v2", func(ev core.OpEvent) { again = append(again, ev) }); err != nil {
		t.Fatal(err)
	}
	if len(again) != len(evs) || again[len(again)-1] != evs[len(evs)-1] {
		t.Fatalf("replay differs:\n%+v\n%+v", again, evs)
	}
	if got := e.serving(); got != "v1" || readPidfile(t, e.root, "v1").Pid != pidBefore {
		t.Fatalf("a repeated operation ID did the work again (serving %s)", got)
	}

	// A plain rollback never goes back to a release that was rolled back.
	if err := e.tgt.Rollback(context.Background(), e.op(), "", nil); err == nil {
		t.Fatal("rollback from v1 found a target although v2 was rolled back")
	}
	// An explicit version is allowed.
	if err := e.tgt.Rollback(context.Background(), e.op(), "v2", nil); err != nil {
		t.Fatal(err)
	}
	if got := e.serving(); got != "v2" {
		t.Fatalf("serving %s, want v2", got)
	}
}

func readPidfile(t *testing.T, root, version string) pidfile {
	t.Helper()
	var pf pidfile
	b, err := os.ReadFile(filepath.Join(root, "run", version+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &pf); err != nil {
		t.Fatal(err)
	}
	return pf
}

func TestFailedHealthKeepsPreviousServing(t *testing.T) {
	e := newEnv(t, 5)
	if err := e.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	err := e.deploy("v3", 100) // v3 answers /healthz with 500
	if err == nil || !strings.Contains(err.Error(), "health") || !strings.Contains(err.Error(), "v1 is still serving") {
		t.Fatalf("deploy of an unhealthy release: %v", err)
	}
	if got, cur := e.serving(), e.current(); got != "v1" || cur != "v1" {
		t.Fatalf("serving %s, current %s; want v1", got, cur)
	}
	if _, err := os.Stat(filepath.Join(e.root, "run", "v3.json")); !os.IsNotExist(err) {
		t.Fatalf("the unhealthy release's process was left running: %v", err)
	}
	// A canary of an unhealthy release gets no requests either.
	if err := e.deploy("v3", 50); err == nil {
		t.Fatal("canary of an unhealthy release was accepted")
	}
	for range 10 {
		if got := e.serving(); got != "v1" {
			t.Fatalf("serving %s, want v1", got)
		}
	}
}

func TestDeployVerifiesArtifactDigest(t *testing.T) {
	e := newEnv(t, 5)
	if err := e.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	h := strings.TrimPrefix(e.digests["v2"], "sha256:")
	if err := os.WriteFile(filepath.Join(e.store, h), []byte("#!/bin/sh\necho tampered\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := e.deploy("v2", 100)
	if err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("tampered artifact: %v", err)
	}
	if got := e.serving(); got != "v1" {
		t.Fatalf("serving %s, want v1", got)
	}
}

func TestCanaryWeightsSplitRealRequests(t *testing.T) {
	e := newEnv(t, 5)
	if err := e.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	if err := e.deploy("v2", 10); err != nil {
		t.Fatal(err)
	}
	for i, w := range []int{10, 50, 90} {
		if i > 0 {
			if err := e.tgt.SetWeight(context.Background(), e.op(), w, nil); err != nil {
				t.Fatal(err)
			}
		}
		st, _ := e.tgt.Status(context.Background(), ref)
		if st.Current != "v1" || st.Candidate != "v2" || st.Weight != w {
			t.Fatalf("status %+v, want v1 with candidate v2 at %d", st, w)
		}
		const n = 2000
		cand := 0
		for range n {
			if e.serving() == "v2" {
				cand++
			}
		}
		share := float64(cand) * 100 / n
		if share < float64(w)-5 || share > float64(w)+5 {
			t.Fatalf("weight %d: candidate answered %.1f%% of %d requests", w, share, n)
		}
	}
	if e.current() != "v1" {
		t.Fatal("a canary moved the current link")
	}
	// Rolling back to the stable release aborts the canary.
	if err := e.tgt.Rollback(context.Background(), e.op(), "v1", nil); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if got := e.serving(); got != "v1" {
			t.Fatalf("after abort serving %s", got)
		}
	}
}

func TestWatchStatusFollowsDeploys(t *testing.T) {
	e := newEnv(t, 5)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := make(chan core.TargetStatus, 64)
	go e.tgt.WatchStatus(ctx, ref, func(s core.TargetStatus) {
		select {
		case seen <- s:
		default:
		}
	})
	if err := e.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	if err := e.deploy("v2", 25); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case s := <-seen:
			if s.Current == "v1" && s.Candidate == "v2" && s.Weight == 25 && s.Healthy {
				return
			}
		case <-deadline:
			t.Fatal("WatchStatus never reported v1 with candidate v2 at 25%")
		}
	}
}

func TestOtherEnvironmentRefused(t *testing.T) {
	e := newEnv(t, 5)
	other := core.Ref{Service: "api", Env: "production"}
	if _, err := e.tgt.Status(context.Background(), other); err == nil {
		t.Fatal("status of another environment was answered")
	}
	err := e.tgt.Rollback(context.Background(), core.OpRequest{ID: "x", Ref: other}, "", nil)
	if err == nil || !strings.Contains(err.Error(), "api/staging") {
		t.Fatalf("rollback of another environment: %v", err)
	}
}

func TestKeepNeverRemovesCurrentOrLastGood(t *testing.T) {
	e := newEnv(t, 2)
	for _, v := range []string{"v1", "v2", "v4"} {
		if err := e.deploy(v, 100); err != nil {
			t.Fatal(err)
		}
	}
	// Back to v2: v4 is now rolled back.
	if err := e.tgt.Rollback(context.Background(), e.op(), "v2", nil); err != nil {
		t.Fatal(err)
	}
	if err := e.deploy("v5", 100); err != nil {
		t.Fatal(err)
	}
	// Keep 2 keeps v5 (current) and v4 (the newest other); v2 is older
	// than v4 but it is the last good release (v4 was rolled back), so it
	// stays; v1 goes.
	st, _ := e.tgt.Status(context.Background(), ref)
	if got := strings.Join(st.Kept, ","); got != "v5,v4,v2" {
		t.Fatalf("kept %s, want v5,v4,v2", got)
	}
	if err := e.tgt.Rollback(context.Background(), e.op(), "", nil); err != nil {
		t.Fatal(err)
	}
	if got := e.serving(); got != "v2" {
		t.Fatalf("rollback went to %s, want v2", got)
	}
}

// alive reports whether pid is a running process (not a zombie).
func alive(pid int) bool {
	id, err := procid.Of(pid)
	return err == nil && id.Check() == procid.Running
}

// crashChild deploys v1, then v2 and stops dead at RIPCORD_LOCAL_CRASH_AT
// (by default between writing current.tmp and renaming it), announcing the
// point on stdout so the parent can kill -9 it there.
func crashChild() {
	port, _ := strconv.Atoi(os.Getenv("RIPCORD_LOCAL_PORT"))
	cfg := testConfig(os.Getenv("RIPCORD_LOCAL_ROOT"), os.Getenv("RIPCORD_LOCAL_STORE"), port)
	tgt, err := New(cfg, nil)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	for _, v := range []string{"v1", "v2"} {
		if v == "v2" {
			at := os.Getenv("RIPCORD_LOCAL_CRASH_AT")
			if at == "" {
				at = "current.tmp-linked"
			}
			testHook = func(point string) {
				if point != at {
					return
				}
				fmt.Println("HOOK " + point)
				select {}
			}
		}
		rel := core.Release{Service: "api", Version: v, ArtifactDigest: os.Getenv("RIPCORD_LOCAL_DIGEST_" + v)}
		if err := tgt.Deploy(context.Background(), core.OpRequest{ID: "deploy-" + v, Ref: ref}, rel, 100, nil); err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
	}
	fmt.Println("ERR no crash point reached")
	os.Exit(1)
}

func TestCrashBetweenLinkAndRename(t *testing.T) {
	base := t.TempDir()
	root, store := filepath.Join(base, "root"), filepath.Join(base, "artifacts")
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), "RIPCORD_LOCAL_CRASH_CHILD=1",
		"RIPCORD_LOCAL_ROOT="+root, "RIPCORD_LOCAL_STORE="+store, "RIPCORD_LOCAL_PORT="+strconv.Itoa(port),
		"RIPCORD_LOCAL_DIGEST_v1="+putArtifact(t, store, "v1"), "RIPCORD_LOCAL_DIGEST_v2="+putArtifact(t, store, "v2"))
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case l := <-lines:
		if l != "HOOK current.tmp-linked" {
			t.Fatalf("child said %q", l)
		}
	case <-time.After(30 * time.Second):
		child.Process.Kill()
		t.Fatal("child never reached the crash point")
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()

	// The crash happened exactly between link and rename.
	if dest, err := os.Readlink(filepath.Join(root, "current.tmp")); err != nil || filepath.Base(dest) != "v2" {
		t.Fatalf("no stale current.tmp -> v2 after the crash: %q %v", dest, err)
	}
	v1, v2 := readPidfile(t, root, "v1"), readPidfile(t, root, "v2")
	if !alive(v1.Pid) || !alive(v2.Pid) {
		t.Fatal("the services should outlive the provider")
	}

	tgt, err := New(testConfig(root, store, port), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	st, _ := tgt.Status(context.Background(), ref)
	problems := strings.Join(st.Problems, "\n")
	for _, want := range []string{"stale current.tmp", "release v2 (pid", "v1 was still running", "deploy-v2 was cut short"} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems lack %q:\n%s", want, problems)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "current.tmp")); !os.IsNotExist(err) {
		t.Errorf("current.tmp still there: %v", err)
	}
	dest, err := os.Readlink(filepath.Join(root, "current"))
	if err != nil || filepath.Base(dest) != "v1" {
		t.Fatalf("current -> %q (%v), want v1", dest, err)
	}
	if err := tgt.lay.complete("v1"); err != nil {
		t.Fatalf("current does not resolve to a complete release: %v", err)
	}
	if st.Current != "v1" || !st.Healthy {
		t.Fatalf("status %+v", st)
	}
	if alive(v2.Pid) {
		t.Error("the half-deployed v2 process is still running")
	}
	resp, err := http.Get("http://" + tgt.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get(ReleaseHeader); got != "v1" {
		t.Fatalf("serving %s, want the adopted v1", got)
	}
	if readPidfile(t, root, "v1").Pid != v1.Pid {
		t.Fatal("v1 was restarted instead of adopted")
	}
	// A console re-attaching to the cut-short deploy learns it failed.
	var last core.OpEvent
	err = tgt.WatchOperation(context.Background(), core.OpRequest{ID: "deploy-v2", Ref: ref}, "", func(ev core.OpEvent) { last = ev })
	if err == nil || !last.Done || !strings.Contains(last.Err, "interrupted") {
		t.Fatalf("re-attach to the interrupted deploy: %v %+v", err, last)
	}
	// And the environment deploys again normally.
	rel := core.Release{Service: "api", Version: "v2", ArtifactDigest: putArtifact(t, store, "v2")}
	if err := tgt.Deploy(context.Background(), core.OpRequest{ID: "deploy-v2-again", Ref: ref}, rel, 100, nil); err != nil {
		t.Fatal(err)
	}
	tgt.Close()
	if alive(v1.Pid) {
		t.Error("Close left the adopted process running")
	}
}

func BenchmarkRollback(b *testing.B) {
	e := newEnv(b, 5)
	for _, v := range []string{"v1", "v2"} {
		if err := e.deploy(v, 100); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		to := []string{"v1", "v2"}[i%2]
		if err := e.tgt.Rollback(context.Background(), e.op(), to, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkProxy(b *testing.B) {
	e := newEnv(b, 5)
	if err := e.deploy("v1", 100); err != nil {
		b.Fatal(err)
	}
	if err := e.deploy("v2", 50); err != nil {
		b.Fatal(err)
	}
	url := "http://" + e.tgt.Addr() + "/"
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var mu sync.Mutex
	var failed error
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				mu.Lock()
				failed = err
				mu.Unlock()
			}
		}
	})
	b.StopTimer()
	if failed != nil {
		b.Fatal(failed)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
