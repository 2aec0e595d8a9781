// Package remote is the client side of the client API: a connection to
// the project's server that satisfies core.Client, so a screen or a
// command written against core.Client runs unchanged against the server.
//
// Subscribe is served from a local mirror: an engine without a store, fed
// the server's snapshot and then its events, so a screen gets an ordinary
// *core.Subscription with the usual coalescing. When the connection drops
// the mirror says so on screen, reconnects with backoff and starts over
// from a fresh snapshot, which replaces whatever it missed.
package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"strconv"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	apiv1 "github.com/ripcordhq/ripcord/cmd/ripcord/internal/api/v1"
	"github.com/ripcordhq/ripcord/core"
)

// maxMessage matches the server's bound on one message.
const maxMessage = 64 << 20

// ErrNoServer is returned by Dial when nothing listens on the socket.
var ErrNoServer = errors.New("no ripcord server is running")

// PermissionError says the socket exists but this user may not use it.
type PermissionError struct {
	Socket string
	Why    string
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("cannot connect to the ripcord server at %s: permission denied: %s", e.Socket, e.Why)
}

// Client is a connection to a server.
type Client struct {
	socket string
	conn   *grpc.ClientConn
	api    apiv1.ClientServiceClient
	srv    apiv1.ServerServiceClient

	ctx    context.Context // the client's lifetime
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mirrorOnce sync.Once
	mirror     *core.Engine
}

var _ core.Client = (*Client)(nil)

// Dial connects to the server on socket. It fails at once, with
// ErrNoServer or a *PermissionError, when no server can be reached there.
func Dial(ctx context.Context, socket string) (*Client, error) {
	if err := probe(ctx, socket); err != nil {
		return nil, err
	}
	dialer := func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}
	conn, err := grpc.NewClient("passthrough:///ripcord",
		grpc.WithContextDialer(dialer),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage)),
	)
	if err != nil {
		return nil, fmt.Errorf("connecting to the ripcord server at %s: %w", socket, err)
	}
	c := &Client{socket: socket, conn: conn, api: apiv1.NewClientServiceClient(conn), srv: apiv1.NewServerServiceClient(conn)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// probe connects once to tell "no server", "not allowed" and "up" apart
// before any RPC, so a command can start a server or say why it may not.
func probe(ctx context.Context, socket string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err == nil {
		return conn.Close()
	}
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w (nothing listens on %s)", ErrNoServer, socket)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return &PermissionError{Socket: socket, Why: whyDenied(socket)}
	}
	return fmt.Errorf("connecting to the ripcord server at %s: %w", socket, err)
}

// whyDenied explains a refused connection from the socket's owner, group
// and mode, and who this user is.
func whyDenied(socket string) string {
	me := strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil {
		me = u.Username
	}
	for _, path := range []string{socket, parentOf(socket)} {
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Sprintf("%s cannot reach it (%v)", me, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			continue
		}
		owner, group := strconv.Itoa(int(st.Uid)), strconv.Itoa(int(st.Gid))
		if u, err := user.LookupId(owner); err == nil {
			owner = u.Username
		}
		if g, err := user.LookupGroupId(group); err == nil {
			group = g.Name
		}
		mode := fi.Mode().Perm()
		what := "the socket"
		if path != socket {
			what = "its directory " + path
		}
		if mode&0o070 == 0 {
			return fmt.Sprintf("%s is mode %04o, owned by %s: only %s (or root) may connect; run the command as %s, or run the server with --group so a group may connect",
				what, mode, owner, owner, owner)
		}
		if path == socket || mode&0o010 == 0 {
			return fmt.Sprintf("%s is mode %04o, owner %s, group %s, and %s is not in group %s; ask for %s to be added to it",
				what, mode, owner, group, me, group, me)
		}
	}
	return me + " may not connect"
}

func parentOf(path string) string {
	for i := len(path) - 1; i > 0; i-- {
		if path[i] == '/' {
			return path[:i]
		}
	}
	return "/"
}

// Socket is the socket the client talks to.
func (c *Client) Socket() string { return c.socket }

// Close ends the connection; a mirror stops following.
func (c *Client) Close() error {
	c.cancel()
	err := c.conn.Close()
	c.wg.Wait()
	return err
}

// RemoteError is a refusal the server sent: its text is the engine's, and
// it unwraps to the engine's sentinel (core.ErrBlocked, a
// *core.LockHeldError…) so callers tell refusals apart as they would with
// an engine in the process.
type RemoteError struct {
	msg string
	err error
}

func (e *RemoteError) Error() string { return e.msg }
func (e *RemoteError) Unwrap() error { return e.err }

// errorOf turns a failure from the wire back into the engine's error.
func errorOf(f *apiv1.Failure) error {
	if f == nil {
		return nil
	}
	e := &RemoteError{msg: f.Message}
	switch f.Kind {
	case apiv1.Failure_KIND_LOCK_HELD:
		var l core.Lock
		_ = json.Unmarshal(f.LockJson, &l)
		e.err = &core.LockHeldError{Lock: l}
	case apiv1.Failure_KIND_BLOCKED:
		e.err = core.ErrBlocked
	case apiv1.Failure_KIND_INVALID_ARGUMENT:
		e.err = core.ErrInvalid
	case apiv1.Failure_KIND_UNAVAILABLE:
		e.err = core.ErrUnavailable
	case apiv1.Failure_KIND_NOT_FOUND:
		e.err = core.ErrNotFound
	}
	return e
}

// ErrLost wraps errors of calls that did not get an answer: the server
// went away or cannot be reached.
var ErrLost = errors.New("the ripcord server did not answer")

// callError describes an RPC error in a person's terms.
func (c *Client) callError(what string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", what, err)
	}
	switch st.Code() {
	case codes.Unavailable, codes.Canceled:
		return fmt.Errorf("%s: %w (%s at %s)", what, ErrLost, st.Message(), c.socket)
	case codes.InvalidArgument:
		return &RemoteError{msg: what + ": " + st.Message(), err: core.ErrInvalid}
	case codes.PermissionDenied, codes.Unauthenticated:
		return fmt.Errorf("%s: %s", what, st.Message())
	}
	return fmt.Errorf("%s: %s", what, st.Message())
}

// Do sends a command to the server and returns what it did. The actor's
// name is a request (RIPCORD_ACTOR); the server records the caller's OS
// account and, if the name differs, "NAME via ACCOUNT".
func (c *Client) Do(ctx context.Context, cmd core.Command) (core.Result, error) {
	b, err := json.Marshal(cmd)
	if err != nil {
		return core.Result{}, err
	}
	resp, err := c.api.Do(ctx, &apiv1.DoRequest{CommandJson: b})
	if err != nil {
		return core.Result{}, c.callError(fmt.Sprintf("%s %s", cmd.Kind, cmd.Ref), err)
	}
	var res core.Result
	if err := json.Unmarshal(resp.ResultJson, &res); err != nil {
		return core.Result{}, fmt.Errorf("%s %s: reading the server's answer: %w", cmd.Kind, cmd.Ref, err)
	}
	return res, errorOf(resp.Failure)
}

// Deployments lists ref's deployments, newest first.
func (c *Client) Deployments(ctx context.Context, ref core.Ref, limit int) ([]core.Deployment, error) {
	resp, err := c.api.Deployments(ctx, &apiv1.DeploymentsRequest{Service: ref.Service, Env: ref.Env, Limit: int32(limit)})
	if err != nil {
		return nil, c.callError("reading the deployments of "+ref.String(), err)
	}
	var deps []core.Deployment
	if err := json.Unmarshal(resp.DeploymentsJson, &deps); err != nil {
		return nil, fmt.Errorf("reading the deployments of %s: %w", ref, err)
	}
	return deps, nil
}

// Release reads one release.
func (c *Client) Release(ctx context.Context, service, version string) (core.Release, error) {
	resp, err := c.api.Release(ctx, &apiv1.ReleaseRequest{Service: service, Version: version})
	if err != nil {
		return core.Release{}, c.callError("reading release "+service+" "+version, err)
	}
	if resp.Failure != nil {
		return core.Release{}, errorOf(resp.Failure)
	}
	var rel core.Release
	if err := json.Unmarshal(resp.ReleaseJson, &rel); err != nil {
		return core.Release{}, fmt.Errorf("reading release %s %s: %w", service, version, err)
	}
	return rel, nil
}

// Watch records actor as watching for as long as stop is not called and
// ctx lives. A dropped connection is re-established under the same id, so
// the screen still tells itself from the others.
func (c *Client) Watch(ctx context.Context, actor core.Actor) (string, func()) {
	ctx, cancel := context.WithCancel(ctx)
	aj, _ := json.Marshal(actor)
	id := ""
	open := func() (grpc.ServerStreamingClient[apiv1.WatchResponse], string, error) {
		stream, err := c.api.Watch(ctx, &apiv1.WatchRequest{Id: id, ActorJson: aj})
		if err != nil {
			return nil, "", err
		}
		first, err := stream.Recv()
		if err != nil {
			return nil, "", err
		}
		return stream, first.Id, nil
	}
	stream, got, err := open()
	if err == nil {
		id = got
	} else {
		id = core.NewID()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		backoff := newBackoff()
		for ctx.Err() == nil {
			if stream != nil {
				// Nothing more comes; Recv returns when the stream ends.
				for {
					if _, err := stream.Recv(); err != nil {
						break
					}
				}
				stream = nil
				continue
			}
			if !backoff.wait(ctx) {
				return
			}
			if s, _, err := open(); err == nil {
				stream = s
				backoff.reset()
			}
		}
	}()
	var once sync.Once
	return id, func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
}

// Subscribe returns the server's state and every event after it, from the
// mirror. The first call connects the mirror (waiting up to 10 s for the
// server's snapshot); a mirror that cannot connect starts empty, says so,
// and keeps trying.
func (c *Client) Subscribe() (core.Snapshot, *core.Subscription) {
	c.mirrorOnce.Do(c.startMirror)
	return c.mirror.Subscribe()
}

// Snapshot is the mirror's current state.
func (c *Client) Snapshot() core.Snapshot {
	c.mirrorOnce.Do(c.startMirror)
	return c.mirror.Snapshot()
}

// startMirror connects the subscription stream, builds the mirror from
// the first snapshot and starts following.
func (c *Client) startMirror() {
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	stream, end, snap, err := c.subscribe(ctx)
	var project string
	var services, envs []string
	if err == nil {
		project, services, envs = snap.Project, snap.Services, snap.Envs
	}
	c.mirror = core.NewEngine(core.EngineOptions{Project: project, Services: services, Envs: envs})
	if err == nil {
		c.mirror.Publish(core.Event{Kind: core.EvResync, Final: true, Snapshot: &snap})
	} else {
		c.lost(err)
		stream = nil
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.follow(stream, end)
	}()
}

// subscribe opens the event stream and reads its snapshot. The stream
// lives as long as the client, not ctx, which only bounds the wait for the
// snapshot.
func (c *Client) subscribe(ctx context.Context) (_ grpc.ServerStreamingClient[apiv1.SubscribeResponse], end context.CancelFunc, snap core.Snapshot, err error) {
	sctx, cancel := context.WithCancel(c.ctx)
	stop := context.AfterFunc(ctx, cancel)
	defer func() {
		if !stop() || err != nil {
			cancel()
		}
	}()
	stream, err := c.api.Subscribe(sctx, &apiv1.SubscribeRequest{})
	if err != nil {
		return nil, nil, snap, err
	}
	first, err := stream.Recv()
	if err != nil {
		return nil, nil, snap, err
	}
	s := first.GetSnapshot()
	if s == nil {
		return nil, nil, snap, errors.New("the server's subscription did not start with a snapshot")
	}
	if err := json.Unmarshal(s.Json, &snap); err != nil {
		return nil, nil, snap, fmt.Errorf("reading the server's snapshot: %w", err)
	}
	return stream, cancel, snap, nil
}

// follow applies the stream's events to the mirror; when the stream ends
// it says so, reconnects with backoff and resyncs from a new snapshot.
func (c *Client) follow(stream grpc.ServerStreamingClient[apiv1.SubscribeResponse], end context.CancelFunc) {
	backoff := newBackoff()
	for c.ctx.Err() == nil {
		if stream == nil {
			if !backoff.wait(c.ctx) {
				return
			}
			s, e, snap, err := c.subscribe(c.ctx)
			if err != nil {
				continue
			}
			stream, end = s, e
			backoff.reset()
			c.mirror.Publish(core.Event{Kind: core.EvResync, Final: true, Snapshot: &snap})
			c.mirror.Publish(core.Event{Kind: core.EvNotice, Final: true, Notice: "reconnected to the ripcord server at " + c.socket + ": showing its state again"})
		}
		err := c.pump(stream)
		end()
		stream = nil
		if c.ctx.Err() != nil {
			return
		}
		c.lost(err)
	}
}

// lost tells the screen the server is out of reach.
func (c *Client) lost(err error) {
	why := "the connection ended"
	if err != nil && !errors.Is(err, io.EOF) {
		if st, ok := status.FromError(err); ok {
			why = st.Message()
		} else {
			why = err.Error()
		}
	}
	now := time.Now()
	c.mirror.Publish(core.Event{Kind: core.EvProvider, Final: true, Provider: &core.ProviderHealth{
		Name: "ripcord server", State: "failed", Message: "connection lost: " + why + "; reconnecting", Since: now,
	}})
	c.mirror.Publish(core.Event{Kind: core.EvNotice, Final: true, Notice: "lost the connection to the ripcord server at " + c.socket + " (" + why + "): reconnecting; nothing on screen moves until then"})
}

// pump applies events until the stream fails.
func (c *Client) pump(stream grpc.ServerStreamingClient[apiv1.SubscribeResponse]) error {
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		switch m := msg.Message.(type) {
		case *apiv1.SubscribeResponse_Events:
			for _, e := range m.Events.Events {
				var ev core.Event
				if json.Unmarshal(e.Json, &ev) != nil {
					continue // a kind this client does not know
				}
				ev.Seq, ev.Key = 0, e.CoalesceKey
				c.mirror.Publish(ev)
			}
		case *apiv1.SubscribeResponse_Snapshot:
			var snap core.Snapshot
			if json.Unmarshal(m.Snapshot.Json, &snap) == nil {
				c.mirror.Publish(core.Event{Kind: core.EvResync, Final: true, Snapshot: &snap})
			}
		}
	}
}

// Info describes the server and how it sees this client.
func (c *Client) Info(ctx context.Context) (*apiv1.InfoResponse, error) {
	info, err := c.srv.Info(ctx, &apiv1.InfoRequest{})
	if err != nil {
		return nil, c.callError("asking the server who it is", err)
	}
	return info, nil
}

// Stop asks the server to stop.
func (c *Client) Stop(ctx context.Context) error {
	if _, err := c.srv.Stop(ctx, &apiv1.StopRequest{}); err != nil {
		return c.callError("stopping the server", err)
	}
	return nil
}

// Logs calls fn with the server's recent log lines and, with follow, each
// new batch until ctx ends.
func (c *Client) Logs(ctx context.Context, lines int, follow bool, fn func([]string)) error {
	stream, err := c.srv.Logs(ctx, &apiv1.LogsRequest{Lines: int32(lines), Follow: follow})
	if err != nil {
		return c.callError("reading the server's log", err)
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return c.callError("reading the server's log", err)
		}
		fn(msg.Lines)
	}
}

// Status returns the JSON of the project's status (server.Status).
func (c *Client) Status(ctx context.Context) ([]byte, error) {
	resp, err := c.api.Status(ctx, &apiv1.StatusRequest{})
	if err != nil {
		return nil, c.callError("reading the status", err)
	}
	return resp.StatusJson, nil
}

// Audit lists audit entries after a sequence number, oldest first.
func (c *Client) Audit(ctx context.Context, after int64, limit int) ([]core.AuditEntry, error) {
	resp, err := c.api.Audit(ctx, &apiv1.AuditRequest{After: after, Limit: int32(limit)})
	if err != nil {
		return nil, c.callError("reading the audit log", err)
	}
	var entries []core.AuditEntry
	if err := json.Unmarshal(resp.EntriesJson, &entries); err != nil {
		return nil, fmt.Errorf("reading the audit log: %w", err)
	}
	return entries, nil
}

// backoff paces reconnects: 100 ms doubling to 2 s.
type backoff struct{ next time.Duration }

func newBackoff() *backoff { return &backoff{next: 100 * time.Millisecond} }

func (b *backoff) reset() { b.next = 100 * time.Millisecond }

// wait sleeps the current delay; false when ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	t := time.NewTimer(b.next)
	defer t.Stop()
	b.next = min(2*b.next, 2*time.Second)
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
