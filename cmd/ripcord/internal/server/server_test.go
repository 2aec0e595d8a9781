package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/lease"
	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/remote"
	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/server"
	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

// project is an engine on a real store, as `ripcord serve` has one.
type project struct {
	eng   *core.Engine
	st    *sqlitestore.Store
	dir   string
	sock  string
	srv   *server.Server
	done  chan error
	ready chan struct{}
}

func newProject(t testing.TB) *project {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng := core.NewEngine(core.EngineOptions{Project: "shop", Services: []string{"api"}, Envs: []string{"staging", "production"}, Store: st})
	if err := eng.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := &project{eng: eng, st: st, dir: dir, sock: filepath.Join(dir, "state.db.sock")}
	p.serve(t)
	return p
}

// serve starts a server for the project's engine on its socket.
func (p *project) serve(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("unix", p.sock)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	p.ready = make(chan struct{})
	close(p.ready)
	p.srv = server.New(server.Options{
		Engine: p.eng, Services: []string{"api"}, Envs: []string{"staging", "production"},
		Record: lease.Record{Pid: os.Getpid(), Host: host, Since: time.Now(), Socket: p.sock},
		Ready:  p.ready,
	})
	p.done = make(chan error, 1)
	go func() { p.done <- p.srv.Serve(ln) }()
	t.Cleanup(p.stop)
}

func (p *project) stop() {
	if p.srv == nil {
		return
	}
	p.srv.Close()
	<-p.done
	p.srv = nil
}

func dial(t testing.TB, sock string) *remote.Client {
	t.Helper()
	c, err := remote.Dial(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func me(t testing.TB) string {
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// waitMirror waits until the client's view satisfies ok.
func waitMirror(t testing.TB, sub *core.Subscription, snap core.Snapshot, ok func(core.Snapshot) bool) core.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !ok(snap) {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("the client's view never got there: %v; it is %+v", err, snap)
		}
		snap.Apply(ev)
	}
	return snap
}

var production = core.Ref{Service: "api", Env: "production"}

// A client's view starts from the server's snapshot and follows its
// events: deployments, verdicts, notices published on the server show on
// the client, and both end up with the same state.
func TestClientFollowsTheServersState(t *testing.T) {
	p := newProject(t)
	dep := core.Deployment{ID: 7, Ref: production, Version: "v1", State: core.DeployHealthy, Weight: 100, Actor: core.Actor{Name: "ana"}}
	p.eng.Publish(core.Event{Kind: core.EvDeployment, Ref: production, Final: true, Deployment: &dep})

	c := dial(t, p.sock)
	snap, sub := c.Subscribe()
	defer sub.Close()
	if got := snap.Deployments[production]; got.Version != "v1" || snap.Project != "shop" {
		t.Fatalf("first snapshot: deployment %+v, project %q; want v1 of shop, as the server has it", got, snap.Project)
	}
	for i := range 50 {
		p.eng.Publish(core.Event{Kind: core.EvErrors, Ref: production, Key: "errors/v2", Errors: &core.ErrorWindow{Ref: production, Release: "v2", Buckets: []core.ErrorBucket{{Count: int64(i)}}}})
	}
	v := core.SpikeVerdict{Ref: production, Candidate: "v2", Baseline: "v1", Kind: core.VerdictSpike}
	p.eng.Publish(core.Event{Kind: core.EvVerdict, Ref: production, Final: true, Verdict: &v})
	snap = waitMirror(t, sub, snap, func(s core.Snapshot) bool { return s.Verdicts[production].Kind == core.VerdictSpike })
	if got := snap.Errors[production]["v2"].Buckets[0].Count; got != 49 {
		t.Fatalf("error window on the client = %d, want the newest (49)", got)
	}
	want, _ := json.Marshal(p.eng.Snapshot().Deployments)
	got, _ := json.Marshal(snap.Deployments)
	if string(want) != string(got) {
		t.Fatalf("deployments differ: server %s, client %s", want, got)
	}
}

// The caller is who the kernel says: a client that names someone else is
// recorded as that name "via" its account, and the host is the server's.
func TestTheCallerIsWhoTheKernelSays(t *testing.T) {
	p := newProject(t)
	c := dial(t, p.sock)
	account := me(t)
	host, _ := os.Hostname()
	forged := core.Actor{Name: "ana", Host: "elsewhere", KeyFingerprint: "SHA256:forged"}
	if _, err := c.Do(context.Background(), core.Command{Kind: core.CmdLock, Ref: production, Actor: forged, Reason: "freeze"}); err != nil {
		t.Fatal(err)
	}
	l := p.eng.Snapshot().Locks[production]
	want := core.Actor{Name: "ana", Via: account, Host: host}
	if account == "ana" {
		want = core.Actor{Name: "ana", Host: host}
	}
	if l.Holder != want {
		t.Fatalf("lock holder = %+v, want %+v (the account from the kernel, the host of the server, no forged key)", l.Holder, want)
	}
	if got := l.Holder.String(); got != "ana via "+account+"@"+host {
		t.Fatalf("holder reads %q", got)
	}
	// Without a name the account itself acts.
	if _, err := c.Do(context.Background(), core.Command{Kind: core.CmdUnlock, Ref: production, Actor: core.Actor{}, Force: true, Reason: "done"}); err != nil {
		t.Fatal(err)
	}
	entries, err := p.st.Audit(context.Background(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[1].Actor.Name != account || entries[1].Actor.Via != "" {
		t.Fatalf("audit = %+v; want the unlock recorded against %s", entries, account)
	}
	if _, err := c.Do(context.Background(), core.Command{Kind: core.CmdLock, Ref: production, Actor: core.Actor{Name: strings.Repeat("a", 65)}}); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("a 65-byte name: %v, want it refused as invalid", err)
	}
}

// Refusals cross the socket with their kind, so the CLI's exit codes and
// the console's messages are what they are with an engine in the process.
func TestRefusalsKeepTheirKind(t *testing.T) {
	p := newProject(t)
	c := dial(t, p.sock)
	ctx := context.Background()
	if _, err := p.eng.Do(ctx, core.Command{Kind: core.CmdLock, Ref: production, Actor: core.Actor{Name: "bo", Host: "bastion"}, Reason: "incident 7"}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Do(ctx, core.Command{Kind: core.CmdLock, Ref: production, Actor: core.Actor{Name: "ana"}})
	var held *core.LockHeldError
	if !errors.As(err, &held) || held.Lock.Holder.Name != "bo" || held.Lock.Reason != "incident 7" || held.Lock.Token != "" {
		t.Fatalf("lock held by bo: %v (%+v); want a LockHeldError naming bo and the reason, without the token", err, held)
	}
	if !strings.Contains(err.Error(), "locked by bo@bastion") {
		t.Fatalf("message %q does not name the holder", err)
	}
	if _, err := c.Do(ctx, core.Command{Kind: core.CmdLock, Ref: core.Ref{Service: "api", Env: "qa"}, Actor: core.Actor{Name: "ana"}}); !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), `unknown environment "qa"`) {
		t.Fatalf("unknown environment: %v", err)
	}
	p.eng.SetUnavailable("providers not started: port 8080 is taken")
	if _, err := c.Do(ctx, core.Command{Kind: core.CmdRollback, Ref: production, Actor: core.Actor{Name: "ana"}}); !errors.Is(err, core.ErrUnavailable) || !strings.Contains(err.Error(), "port 8080 is taken") {
		t.Fatalf("rollback without providers: %v", err)
	}
	if _, err := c.Release(ctx, "api", "v9"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("unknown release: %v", err)
	}
}

// A lock's token is the power to release it: it never leaves the server,
// neither in the snapshot nor in events.
func TestLockTokensStayOnTheServer(t *testing.T) {
	p := newProject(t)
	c := dial(t, p.sock)
	snap, sub := c.Subscribe()
	defer sub.Close()
	if _, err := p.eng.Do(context.Background(), core.Command{Kind: core.CmdLock, Ref: production, Actor: core.Actor{Name: "bo"}}); err != nil {
		t.Fatal(err)
	}
	if locks, err := p.st.Locks(context.Background()); err != nil || len(locks) != 1 || locks[0].Token == "" {
		t.Fatalf("the stored lock has no token: nothing to check (%+v, %v)", locks, err)
	}
	snap = waitMirror(t, sub, snap, func(s core.Snapshot) bool { return s.Locks[production].Holder.Name == "bo" })
	if tok := snap.Locks[production].Token; tok != "" {
		t.Fatalf("the client saw the lock token %q", tok)
	}
	c2 := dial(t, p.sock)
	if tok := c2.Snapshot().Locks[production].Token; tok != "" {
		t.Fatalf("a new client's snapshot carries the token %q", tok)
	}
}

// When the server goes away the screen says so, and when one answers on
// the socket again the client starts over from its snapshot: what changed
// meanwhile shows, and the screen says it is back.
func TestClientReconnectsAndResyncs(t *testing.T) {
	p := newProject(t)
	c := dial(t, p.sock)
	snap, sub := c.Subscribe()
	defer sub.Close()
	p.stop()
	snap = waitMirror(t, sub, snap, func(s core.Snapshot) bool {
		return s.Providers["ripcord server"].State == "failed" && hasNotice(s, "lost the connection to the ripcord server")
	})
	// Meanwhile a rollback happened (the next server finds it in the
	// store).
	dep := core.Deployment{ID: 9, Ref: production, Version: "v1", State: core.DeployRolledBack, Actor: core.Actor{Name: "bo"}}
	p.eng.Publish(core.Event{Kind: core.EvDeployment, Ref: production, Final: true, Deployment: &dep})
	p.serve(t)
	snap = waitMirror(t, sub, snap, func(s core.Snapshot) bool {
		return s.Deployments[production].State == core.DeployRolledBack && hasNotice(s, "reconnected to the ripcord server")
	})
	if _, ok := snap.Providers["ripcord server"]; ok {
		t.Fatal("the lost-connection marker outlived the reconnect")
	}
	if _, err := c.Do(context.Background(), core.Command{Kind: core.CmdLock, Ref: production, Actor: core.Actor{Name: "ana"}}); err != nil {
		t.Fatalf("a command after the reconnect: %v", err)
	}
}

func hasNotice(s core.Snapshot, text string) bool {
	for _, n := range s.Notices {
		if strings.Contains(n, text) {
			return true
		}
	}
	return false
}

// Presence lasts as long as the client's watch, under the id it was
// given; a client that goes away stops watching.
func TestWatchLastsAsLongAsTheClient(t *testing.T) {
	p := newProject(t)
	c := dial(t, p.sock)
	id, stop := c.Watch(context.Background(), core.Actor{Name: "ana"})
	watchers := func() []core.Watcher {
		ws, err := p.st.Watchers(context.Background(), time.Now().Add(-time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		return ws
	}
	deadline := time.Now().Add(10 * time.Second)
	for ws := watchers(); len(ws) != 1 || ws[0].ID != id || ws[0].Actor.Name != "ana"; ws = watchers() {
		if time.Now().After(deadline) {
			t.Fatalf("watchers = %+v, want ana under id %s", ws, id)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	for ws := watchers(); len(ws) != 0; ws = watchers() {
		if time.Now().After(deadline) {
			t.Fatalf("watchers after stop = %+v", ws)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Dial tells "no server" from "not allowed".
func TestDialSaysWhyItCannotConnect(t *testing.T) {
	dir := t.TempDir()
	_, err := remote.Dial(context.Background(), filepath.Join(dir, "none.sock"))
	if !errors.Is(err, remote.ErrNoServer) {
		t.Fatalf("no socket: %v, want ErrNoServer", err)
	}
	// A socket file nobody listens on (a server killed with -9).
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := remote.Dial(context.Background(), stale); !errors.Is(err, remote.ErrNoServer) {
		t.Fatalf("stale socket: %v, want ErrNoServer", err)
	}
}

// One server per state store: the second is refused, naming the first.
func TestSecondLeaseIsRefusedNamingTheHolder(t *testing.T) {
	p := lease.For(filepath.Join(t.TempDir(), "state.db"))
	since := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	first, err := lease.Acquire(p, lease.Record{Pid: 4242, Host: "bastion-1", Since: since, Socket: p.Socket}, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lease.Acquire(p, lease.Record{Pid: 1, Host: "x"}, 0o600)
	var held *lease.HeldError
	if !errors.As(err, &held) || held.Record == nil || held.Record.Pid != 4242 {
		t.Fatalf("second lease: %v", err)
	}
	for _, want := range []string{"pid 4242", "bastion-1", "since " + since.Local().Format("2006-01-02 15:04"), "ripcord server stop"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("%q does not say %q", err, want)
		}
	}
	first.Release()
	again, err := lease.Acquire(p, lease.Record{Pid: 2}, 0o600)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again.Release()
}

// A state path too long for a socket gets a short socket elsewhere, the
// same for every client.
func TestLongStatePathsGetAShortSocket(t *testing.T) {
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 90), "state.db")
	p := lease.For(long)
	if len(p.Socket) > 103 || !strings.HasSuffix(p.Socket, ".sock") {
		t.Fatalf("socket %q (%d bytes) does not fit a sockaddr", p.Socket, len(p.Socket))
	}
	if q := lease.For(long); q.Socket != p.Socket {
		t.Fatalf("two computations disagree: %s, %s", p.Socket, q.Socket)
	}
	if other := lease.For(long + "x"); other.Socket == p.Socket {
		t.Fatal("two stores share a socket")
	}
}
