package builtin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/host"
	pbconv "github.com/ripcordhq/ripcord/plugins/internal/convert"
	pb "github.com/ripcordhq/ripcord/plugins/internal/pluginpb"
	"github.com/ripcordhq/ripcord/plugins/local"
	"github.com/ripcordhq/ripcord/plugins/sdk"
	"github.com/ripcordhq/ripcord/plugins/sdk/conformance"
)

// storeArtifact builds testdata/svc and puts the binary into an artifact
// store the way the exec pipeline does: the file named by its sha256 hex.
func storeArtifact(t *testing.T) (store, digest string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "svc")
	build := exec.Command("go", "build", "-o", bin, "./testdata/svc")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the test service: %v\n%s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	h := hex.EncodeToString(sum[:])
	store = t.TempDir()
	if err := os.WriteFile(filepath.Join(store, h), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return store, "sha256:" + h
}

func TestLocalBuiltinPassesConformance(t *testing.T) {
	store, digest := storeArtifact(t)
	ref := sdk.Ref{Service: "conformance", Env: "test"}
	settings := func() map[string]any {
		return map[string]any{
			"ref":  map[string]any{"service": ref.Service, "env": ref.Env},
			"root": filepath.Join(t.TempDir(), "env"), "run": "./artifact -port {{.Port}}",
			"health": "http://127.0.0.1:{{.Port}}/healthz", "port": 0,
			"artifact_store": store, "grace": "2s", "health_timeout": "10s",
		}
	}
	good := settings()
	stopReleases(t, good["root"].(string))
	bad := settings()
	bad["grace"] = 30
	conformance.Run(t, conformance.Options{
		Binary:      launcher(t, "local"),
		Name:        "local",
		Env:         []string{serveEnv + "=local"},
		Settings:    good,
		BadSettings: bad,
		BadPath:     "grace",
		Kinds:       []string{"target"},
		Ref:         ref,
		Release:     sdk.Release{Service: ref.Service, Version: "v1", ArtifactDigest: digest},
		Candidate:   sdk.Release{Service: ref.Service, Version: "v2", ArtifactDigest: digest},
	})
}

// stopReleases ends the proxy and the releases left running under root
// once the test is over: they outlive the provider process by design (a
// restarted provider adopts them), so nothing else stops them.
func stopReleases(t *testing.T, root string) {
	t.Cleanup(func() {
		if err := local.StopProxy(root); err != nil {
			t.Errorf("stopping the proxy of %s: %v", root, err)
		}
		files, _ := filepath.Glob(filepath.Join(root, "run", "*.json"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			var pf struct {
				Pid int `json:"pid"`
			}
			if json.Unmarshal(b, &pf) == nil && pf.Pid > 0 {
				_ = syscall.Kill(-pf.Pid, syscall.SIGKILL)
			}
		}
	})
}

// startBuiltin starts one built-in under a real host, as the console does.
func startBuiltin(t testing.TB, name string) *host.Host {
	t.Helper()
	dir := t.TempDir()
	spec := host.PluginSpec{Name: name, Path: launcher(t, name), Env: []string{serveEnv + "=" + name}}
	lock := filepath.Join(dir, host.LockFileName)
	if err := host.WriteLock(lock, []host.PluginSpec{spec}); err != nil {
		t.Fatal(err)
	}
	h, err := host.New(host.Options{Plugins: []host.PluginSpec{spec}, LockFile: lock, Workdir: dir,
		SocketDir: filepath.Join(dir, "sock"), LogLevel: hclog.Warn,
		Log: func(l core.LogLine) { t.Log(l.Source, l.Text) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return h
}

func execSettings5s(stateDir string) map[string]any {
	return map[string]any{
		"state_dir": stateDir,
		"work_dir":  stateDir,
		"grace":     "1s",
		"stages": []any{
			map[string]any{"name": "build", "run": "true"},
			map[string]any{"name": "test", "needs": []string{"build"}, "steps": []any{
				map[string]any{"name": "slow", "run": "sleep 5", "timeout": "1m"},
			}},
		},
	}
}

// A run triggered through the built-in is seen running, and Cancel ends it
// well before its 5-second step would have.
func TestExecBuiltinCancelsARun(t *testing.T) {
	h := startBuiltin(t, "exec")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Configure(ctx, "exec", execSettings5s(t.TempDir()), nil); err != nil {
		t.Fatal(err)
	}
	conn, err := h.Conn(ctx, "exec")
	if err != nil {
		t.Fatal(err)
	}
	c := pb.NewPipelineSourceServiceClient(conn)
	tr, err := c.Trigger(ctx, &pb.TriggerRequest{Service: "api", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	watch, err := c.WatchRuns(ctx, &pb.WatchRunsRequest{Service: "api"})
	if err != nil {
		t.Fatal(err)
	}
	next := func() core.PipelineRun {
		t.Helper()
		m, err := watch.Recv()
		if err != nil {
			t.Fatalf("watching runs: %v", err)
		}
		return pbconv.FromPipelineRun(m.GetRun())
	}
	for r := next(); !(r.ID == tr.GetRunId() && r.Stages[1].State == core.RunRunning); r = next() {
	}
	cancelledAt := time.Now()
	if _, err := c.Cancel(ctx, &pb.CancelRequest{RunId: tr.GetRunId()}); err != nil {
		t.Fatal(err)
	}
	for r := next(); r.ID != tr.GetRunId() || r.State != core.RunCanceled; r = next() {
		if r.ID == tr.GetRunId() && r.State != core.RunRunning {
			t.Fatalf("run ended %s, want canceled", r.State)
		}
	}
	if d := time.Since(cancelledAt); d > 3*time.Second {
		t.Fatalf("the run ended %v after Cancel; its step sleeps 5s, so it was not stopped", d)
	}
}

func TestExecBuiltinPassesConformance(t *testing.T) {
	state := t.TempDir()
	// A run kept from an earlier process: what a restarted console shows
	// first, and the first message WatchRuns must deliver.
	h := startBuiltin(t, "exec")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quick := map[string]any{"state_dir": state, "stages": []any{map[string]any{"name": "build", "run": "true"}}}
	if err := h.Configure(ctx, "exec", quick, nil); err != nil {
		t.Fatal(err)
	}
	conn, err := h.Conn(ctx, "exec")
	if err != nil {
		t.Fatal(err)
	}
	c := pb.NewPipelineSourceServiceClient(conn)
	if _, err := c.Trigger(ctx, &pb.TriggerRequest{Service: "conformance", Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	watch, err := c.WatchRuns(ctx, &pb.WatchRunsRequest{Service: "conformance"})
	if err != nil {
		t.Fatal(err)
	}
	for {
		m, err := watch.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if m.GetRun().GetState() == pbconv.RunState(core.RunSucceeded) {
			break
		}
	}
	_ = h.Close()

	bad := execSettings5s(state)
	bad["stages"].([]any)[1].(map[string]any)["steps"].([]any)[0].(map[string]any)["timeout"] = 5
	conformance.Run(t, conformance.Options{
		Binary:      launcher(t, "exec"),
		Name:        "exec",
		Env:         []string{serveEnv + "=exec"},
		Settings:    execSettings5s(state),
		BadSettings: bad,
		BadPath:     "stages.1.steps.0.timeout",
		Kinds:       []string{"pipeline"},
		Service:     "conformance",
	})
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestSentryIngestBuiltinPassesConformance(t *testing.T) {
	port := freePort(t)
	settings := map[string]any{"service": "conformance", "listen": "127.0.0.1:" + strconv.Itoa(port), "keys": map[string]string{"42": "publickey"}}
	// The watch's first message is a heartbeat while no error has come.
	conformance.Run(t, conformance.Options{
		Binary:      launcher(t, "sentry-ingest"),
		Name:        "sentry-ingest",
		Env:         []string{serveEnv + "=sentry-ingest"},
		Settings:    settings,
		BadSettings: map[string]any{"service": "conformance", "keys": map[string]string{"shop": "publickey"}},
		BadPath:     "keys.shop",
		Kinds:       []string{"errors"},
		Ref:         sdk.Ref{Service: "conformance", Env: "test"},
	})
}

// Each adapter names the setting at fault, nested ones by their dotted
// path, and stays unconfigured (degraded) after a rejection.
func TestBadSettingsNameTheirPath(t *testing.T) {
	cases := []struct {
		name     string
		provider sdk.Provider
		settings string
		paths    []string
	}{
		{"local missing", &localServer{log: hclog.NewNullLogger()}, `{"ref":{"service":"api"},"run":"x","health":"tcp://127.0.0.1:{{.Port}}"}`,
			[]string{"ref.env", "root"}},
		{"local unknown", &localServer{log: hclog.NewNullLogger()}, `{"ref":{"service":"api","env":"prod"},"root":"/x","run":"x","health":"h","kep":3}`,
			[]string{"kep"}},
		{"local template", &localServer{log: hclog.NewNullLogger()}, `{"ref":{"service":"api","env":"prod"},"root":"/x","run":"./api --port {{.Port","health":"h"}`,
			[]string{"run"}},
		{"exec duration", &execServer{log: hclog.NewNullLogger()}, `{"state_dir":"/x","stages":[{"name":"a","run":"true"},{"name":"b","run":"true","timeout":"soon"}]}`,
			[]string{"stages.1.timeout"}},
		{"exec unknown step key", &execServer{log: hclog.NewNullLogger()}, `{"state_dir":"/x","stages":[{"name":"a","steps":[{"name":"s","run":"true","tiemout":"1s"}]}]}`,
			[]string{"stages.0.steps.0.tiemout"}},
		{"exec missing", &execServer{log: hclog.NewNullLogger()}, `{"stages":[{"run":"true"}]}`,
			[]string{"stages.0.name", "state_dir"}},
		{"sentry-ingest", &sentryIngestServer{log: hclog.NewNullLogger()}, `{"service":"api","listen":8765,"keys":{"1":"k"}}`,
			[]string{"listen"}},
		{"sentry-ingest keys", &sentryIngestServer{log: hclog.NewNullLogger()}, `{"service":"api"}`,
			[]string{"keys"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.provider.Configure(context.Background(), sdk.ConfigureRequest{Settings: []byte(c.settings)})
			var se sdk.SettingErrors
			if !errors.As(err, &se) {
				t.Fatalf("Configure = %v, want setting errors", err)
			}
			var got []string
			for _, e := range se {
				got = append(got, e.Path)
			}
			if strings.Join(got, ",") != strings.Join(c.paths, ",") {
				t.Fatalf("paths %v, want %v (%v)", got, c.paths, err)
			}
			var deg sdk.DegradedError
			if err := c.provider.CheckHealth(context.Background()); !errors.As(err, &deg) {
				t.Fatalf("CheckHealth after rejected settings = %v, want degraded", err)
			}
		})
	}
}

// opEvents reads an operation stream to its end.
func opEvents(t *testing.T, recv func() (*pb.OperationEvent, error)) []*pb.OperationEvent {
	t.Helper()
	var evs []*pb.OperationEvent
	for {
		ev, err := recv()
		if errors.Is(err, io.EOF) {
			return evs
		}
		if err != nil {
			t.Fatalf("operation stream: %v", err)
		}
		evs = append(evs, ev)
	}
}

func completion(t *testing.T, evs []*pb.OperationEvent) *pb.Completed {
	t.Helper()
	if len(evs) == 0 || evs[len(evs)-1].GetCompleted() == nil {
		t.Fatalf("no completion among %d events", len(evs))
	}
	return evs[len(evs)-1].GetCompleted()
}

// Reconfiguring closes the old target (its public port is free for the new
// one, which adopts the running release), and a provider process started
// later re-attaches to a deploy by its external ref, replaying its events.
func TestLocalBuiltinReconfiguresAndReattaches(t *testing.T) {
	store, digest := storeArtifact(t)
	ref := core.Ref{Service: "api", Env: "staging"}
	root := filepath.Join(t.TempDir(), "env")
	stopReleases(t, root)
	settings := map[string]any{
		"ref": map[string]any{"service": ref.Service, "env": ref.Env}, "root": root,
		"run": "./artifact -port {{.Port}}", "health": "http://127.0.0.1:{{.Port}}/healthz",
		"port": freePort(t), "artifact_store": store, "grace": "2s",
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	h := startBuiltin(t, "local")
	if err := h.Configure(ctx, "local", settings, nil); err != nil {
		t.Fatal(err)
	}
	conn, err := h.Conn(ctx, "local")
	if err != nil {
		t.Fatal(err)
	}
	c := pb.NewDeployTargetServiceClient(conn)
	op := &pb.Operation{Id: "deploy-v1", Ref: pbconv.Ref(ref)}
	s, err := c.Deploy(ctx, &pb.DeployRequest{Operation: op, Release: pbconv.Release(core.Release{Service: ref.Service, Version: "v1", ArtifactDigest: digest}), Weight: 100})
	if err != nil {
		t.Fatal(err)
	}
	deployed := opEvents(t, func() (*pb.OperationEvent, error) { m, err := s.Recv(); return m.GetEvent(), err })
	if c := completion(t, deployed); c.GetOutcome() != pb.Outcome_OUTCOME_SUCCEEDED {
		t.Fatalf("deploy: %v %s", c.GetOutcome(), c.GetError())
	}
	extRef := deployed[len(deployed)-1].GetExternalRef()

	if err := h.Configure(ctx, "local", settings, nil); err != nil {
		t.Fatalf("configuring again on the same port: %v", err)
	}
	st, err := c.Status(ctx, &pb.StatusRequest{Ref: pbconv.Ref(ref)})
	if err != nil {
		t.Fatal(err)
	}
	if got := pbconv.FromTargetStatus(st.GetStatus()); got.Current != "v1" {
		t.Fatalf("after reconfiguring, current = %q, want v1 (adopted)", got.Current)
	}
	_ = h.Close()

	h2 := startBuiltin(t, "local")
	if err := h2.Configure(ctx, "local", settings, nil); err != nil {
		t.Fatal(err)
	}
	conn2, err := h2.Conn(ctx, "local")
	if err != nil {
		t.Fatal(err)
	}
	w, err := pb.NewDeployTargetServiceClient(conn2).WatchOperation(ctx, &pb.WatchOperationRequest{Operation: op, ExternalRef: extRef})
	if err != nil {
		t.Fatal(err)
	}
	replayed := opEvents(t, func() (*pb.OperationEvent, error) { m, err := w.Recv(); return m.GetEvent(), err })
	if c := completion(t, replayed); c.GetOutcome() != pb.Outcome_OUTCOME_SUCCEEDED {
		t.Fatalf("re-attached outcome: %v %s", c.GetOutcome(), c.GetError())
	}
	var msgs []string
	for _, ev := range replayed {
		msgs = append(msgs, ev.GetProgress().GetMessage())
	}
	if !slices.ContainsFunc(msgs, func(m string) bool { return strings.HasPrefix(m, "artifact verified") }) {
		t.Fatalf("re-attached events %q do not replay the deploy's steps", msgs)
	}
}

// Reconfiguring the ingest closes the old one, so the new settings take
// the same address and only the new key is accepted.
func TestSentryIngestReconfigureReplacesTheListener(t *testing.T) {
	s := &sentryIngestServer{log: hclog.NewNullLogger()}
	t.Cleanup(func() { s.mu.Lock(); s.closeLocked(); s.mu.Unlock() })
	port := freePort(t)
	listen := "127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, key := range []string{"oldkey", "newkey"} {
		set := fmt.Sprintf(`{"service":"api","listen":%q,"keys":{"42":%q}}`, listen, key)
		if err := s.Configure(ctx, sdk.ConfigureRequest{Settings: []byte(set)}); err != nil {
			t.Fatalf("configure with key %s: %v", key, err)
		}
	}
	if err := s.CheckHealth(ctx); err != nil {
		t.Fatalf("CheckHealth = %v", err)
	}
	post := func(key string) int {
		url := fmt.Sprintf("http://%s/api/42/store/?sentry_key=%s", listen, key)
		resp, err := http.Post(url, "application/json", strings.NewReader(`{"level":"error","message":"boom"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post("oldkey"); got != http.StatusUnauthorized {
		t.Fatalf("old key answered %d, want 401", got)
	}
	if got := post("newkey"); got != http.StatusOK {
		t.Fatalf("new key answered %d, want 200", got)
	}
}

// Cancelling a deploy that waits for a release's health ends it promptly,
// recorded as cancelled for anyone attaching with the operation's id.
func TestLocalBuiltinCancelsADeployWaitingForHealth(t *testing.T) {
	store, digest := storeArtifact(t)
	ref := core.Ref{Service: "api", Env: "staging"}
	root := filepath.Join(t.TempDir(), "env")
	stopReleases(t, root)
	settings := map[string]any{
		"ref": map[string]any{"service": ref.Service, "env": ref.Env}, "root": root,
		// A release that never answers its health check.
		"run": "sleep 60", "health": "http://127.0.0.1:{{.Port}}/healthz",
		"artifact_store": store, "grace": "1s", "health_timeout": "1m",
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := startBuiltin(t, "local")
	if err := h.Configure(ctx, "local", settings, nil); err != nil {
		t.Fatal(err)
	}
	conn, err := h.Conn(ctx, "local")
	if err != nil {
		t.Fatal(err)
	}
	c := pb.NewDeployTargetServiceClient(conn)
	req := &pb.DeployRequest{Operation: &pb.Operation{Id: "deploy-slow", Ref: pbconv.Ref(ref)},
		Release: pbconv.Release(core.Release{Service: ref.Service, Version: "v1", ArtifactDigest: digest}), Weight: 100}
	callCtx, cancelCall := context.WithCancel(ctx)
	s, err := c.Deploy(callCtx, req)
	if err != nil {
		t.Fatal(err)
	}
	for {
		m, err := s.Recv()
		if err != nil {
			t.Fatalf("deploy stream ended before the release started: %v", err)
		}
		if strings.HasPrefix(m.GetEvent().GetProgress().GetMessage(), "starting") {
			break
		}
	}
	cancelCall()
	cancelledAt := time.Now()
	again, err := c.Deploy(ctx, req) // the same id attaches to the recorded operation
	if err != nil {
		t.Fatal(err)
	}
	evs := opEvents(t, func() (*pb.OperationEvent, error) { m, err := again.Recv(); return m.GetEvent(), err })
	if got := completion(t, evs).GetOutcome(); got != pb.Outcome_OUTCOME_CANCELLED {
		t.Fatalf("outcome %v, want cancelled", got)
	}
	if d := time.Since(cancelledAt); d > 3*time.Second {
		t.Fatalf("the deploy ended %v after its cancel", d)
	}
}
