// Package server serves a project's engine to its clients over the client
// API (ripcord.api.v1) on a Unix socket: consoles, CLI commands and, later,
// SSH sessions. It is the only way in: identity comes from the kernel, a
// command runs on the server's own context so a client that goes away
// never cuts an operation short, and a slow client only ever slows itself.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "github.com/ripcordhq/ripcord/cmd/ripcord/internal/api/v1"
	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/lease"
	"github.com/ripcordhq/ripcord/core"
)

// MaxMessage bounds one API message each way. A snapshot with a full
// audit tail and every error window is well under it.
const MaxMessage = 64 << 20

// batchEvery is the shortest interval between two event batches sent to
// one client. Under a flood a client gets one message per interval holding
// everything pending (coalesced), instead of one per event; a screen draws
// at 20 Hz, so 10 ms costs nothing it could show.
const batchEvery = 10 * time.Millisecond

// maxBatch bounds the events in one message.
const maxBatch = 2048

// Options configure a Server.
type Options struct {
	Engine *core.Engine
	// Services and Envs are the project's, for Status.
	Services, Envs []string
	// Record describes this server (pid, host, since, socket, log) for
	// Info and Status.
	Record lease.Record
	// ConfigPath and StatePath are reported by Info.
	ConfigPath, StatePath string
	// Ready is closed once the providers, observers and rollout
	// controller have started (or failed to): commands wait for it, so
	// the first command after a start sees the live picture and every
	// handler. NotReady says why the server has no providers, if so.
	Ready    <-chan struct{}
	NotReady func() string
	// Stop is called after a Stop call was answered.
	Stop func()
	// Log holds the server's recent output for Logs.
	Log *LogBook
	// Identify names the account of a call's caller. Default: the
	// kernel's peer credentials on the Unix socket, as a user name.
	Identify func(ctx context.Context) (string, error)
	// MayStop says whether the caller may stop the server. Default: the
	// server's own account, or root.
	MayStop func(ctx context.Context) bool
	// Person, when set, is who a caller is, whatever it says about
	// itself (the SSH bastion knows its callers by their keys). It
	// replaces the account and the name a client asks for.
	Person func(ctx context.Context) (core.Actor, error)
	// Authorize, when set, may refuse a command before it reaches the
	// engine (a person's role); its error is the refusal.
	Authorize func(ctx context.Context, cmd core.Command) error
}

// Server implements the client API on an engine.
type Server struct {
	apiv1.UnimplementedClientServiceServer
	apiv1.UnimplementedServerServiceServer

	o       Options
	eng     *core.Engine
	host    string
	account string
	enc     *encoder
	clients atomic.Int32

	// ctx is the server's lifetime: commands run on it, not on the
	// caller's, and end only when the server stops.
	ctx    context.Context
	cancel context.CancelFunc
	grpc   *grpc.Server
}

// New builds a server for an engine.
func New(o Options) *Server {
	s := &Server{o: o, eng: o.Engine, enc: newEncoder()}
	s.host, _ = os.Hostname()
	s.account = accountName(uint32(os.Getuid()))
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.o.Identify == nil && s.o.Person != nil {
		s.o.Identify = func(ctx context.Context) (string, error) {
			a, err := s.o.Person(ctx)
			return a.Name, err
		}
	}
	if s.o.Identify == nil {
		s.o.Identify = func(ctx context.Context) (string, error) {
			p, err := PeerFrom(ctx)
			if err != nil {
				return "", err
			}
			return accountName(p.UID), nil
		}
	}
	if s.o.MayStop == nil {
		s.o.MayStop = func(ctx context.Context) bool {
			p, err := PeerFrom(ctx)
			return err == nil && (p.UID == 0 || int(p.UID) == os.Getuid())
		}
	}
	if s.o.Log == nil {
		s.o.Log = NewLogBook(1)
	}
	if s.o.Ready == nil {
		ready := make(chan struct{})
		close(ready)
		s.o.Ready = ready
	}
	s.grpc = grpc.NewServer(
		grpc.Creds(peerCreds{}),
		grpc.MaxRecvMsgSize(MaxMessage), grpc.MaxSendMsgSize(MaxMessage),
	)
	apiv1.RegisterClientServiceServer(s.grpc, s)
	apiv1.RegisterServerServiceServer(s.grpc, s)
	return s
}

// Serve answers calls on ln until Close.
func (s *Server) Serve(ln net.Listener) error {
	err := s.grpc.Serve(ln)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Close ends every call (subscriptions end, so their clients reconnect to
// the next server) and cancels commands still running.
func (s *Server) Close() {
	s.cancel()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		s.grpc.Stop()
	}
}

// Clients counts open subscriptions.
func (s *Server) Clients() int { return int(s.clients.Load()) }

// actor is the caller as the audit log records it: the OS account the
// kernel names, or the person a shared account says it is, with the
// account ("ana via deploy"). Nothing else the client says about itself
// is taken, except that it is automation.
func (s *Server) actor(ctx context.Context, asked core.Actor) (core.Actor, error) {
	if s.o.Person != nil {
		a, err := s.o.Person(ctx)
		if err != nil {
			return core.Actor{}, status.Error(codes.Unauthenticated, err.Error())
		}
		a.Automation = asked.Automation
		return a, nil
	}
	account, err := s.o.Identify(ctx)
	if err != nil {
		return core.Actor{}, status.Error(codes.Unauthenticated, err.Error())
	}
	a := core.Actor{Name: account, Host: s.host, Automation: asked.Automation}
	name := strings.TrimSpace(asked.Name)
	if name != "" && name != account {
		if err := checkName(name); err != nil {
			return core.Actor{}, status.Error(codes.InvalidArgument, err.Error())
		}
		a.Name, a.Via = name, account
	}
	return a, nil
}

// checkName refuses a name too long to be one. Control characters are
// the engine's to escape, as every name that enters it.
func checkName(name string) error {
	if len(name) > 64 {
		return fmt.Errorf("the name %.20q… is longer than 64 bytes", name)
	}
	return nil
}

// waitReady waits until the providers have started, so a command sees
// the handlers and the picture the console shows.
func (s *Server) waitReady(ctx context.Context) error {
	select {
	case <-s.o.Ready:
		return nil
	case <-ctx.Done():
		return status.Error(codes.DeadlineExceeded, "the server is still starting its providers")
	case <-s.ctx.Done():
		return status.Error(codes.Unavailable, "the server is stopping")
	}
}

// Subscribe sends the snapshot, then the events in batches.
func (s *Server) Subscribe(_ *apiv1.SubscribeRequest, stream grpc.ServerStreamingServer[apiv1.SubscribeResponse]) error {
	ctx := stream.Context()
	snap, sub := s.eng.Subscribe()
	defer sub.Close()
	s.clients.Add(1)
	defer s.clients.Add(-1)
	b, err := json.Marshal(sanitizeSnapshot(snap))
	if err != nil {
		return status.Errorf(codes.Internal, "encoding the snapshot: %v", err)
	}
	if err := stream.Send(&apiv1.SubscribeResponse{Message: &apiv1.SubscribeResponse_Snapshot{Snapshot: &apiv1.Snapshot{Json: b}}}); err != nil {
		return err
	}
	var buf []core.Event
	var last time.Time
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.ctx.Done():
			return status.Error(codes.Unavailable, "the server is stopping")
		case <-sub.Ready():
		}
		if wait := batchEvery - time.Since(last); wait > 0 {
			pause.Reset(wait)
			select {
			case <-ctx.Done():
				return nil
			case <-pause.C:
			}
		}
		buf = sub.Drain(buf[:0])
		for i := 0; i < len(buf); i += maxBatch {
			batch := &apiv1.EventBatch{Events: make([]*apiv1.Event, 0, min(maxBatch, len(buf)-i))}
			for _, ev := range buf[i:min(i+maxBatch, len(buf))] {
				js, err := s.enc.event(ev)
				if err != nil {
					continue // every event kind marshals; a bad one is not worth a client
				}
				batch.Events = append(batch.Events, &apiv1.Event{Json: js, CoalesceKey: ev.Key})
			}
			if err := stream.Send(&apiv1.SubscribeResponse{Message: &apiv1.SubscribeResponse_Events{Events: batch}}); err != nil {
				return err
			}
		}
		last = time.Now()
	}
}

// Do runs a command as the caller, on the server's context.
func (s *Server) Do(ctx context.Context, req *apiv1.DoRequest) (*apiv1.DoResponse, error) {
	var cmd core.Command
	if err := json.Unmarshal(req.CommandJson, &cmd); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "the command is not a command: %v", err)
	}
	actor, err := s.actor(ctx, cmd.Actor)
	if err != nil {
		return nil, err
	}
	cmd.Actor = actor
	if s.o.Authorize != nil {
		if err := s.o.Authorize(ctx, cmd); err != nil {
			b, _ := json.Marshal(core.Result{Outcome: "refused", Message: err.Error()})
			return &apiv1.DoResponse{ResultJson: b, Failure: FailureOf(err)}, nil
		}
	}
	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}
	res, derr := s.eng.Do(s.ctx, cmd)
	b, err := json.Marshal(res)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encoding the result: %v", err)
	}
	return &apiv1.DoResponse{ResultJson: b, Failure: FailureOf(derr)}, nil
}

// FailureOf describes an engine error for the wire, or nil for none.
func FailureOf(err error) *apiv1.Failure {
	if err == nil {
		return nil
	}
	f := &apiv1.Failure{Kind: apiv1.Failure_KIND_FAILED, Message: err.Error()}
	var held *core.LockHeldError
	switch {
	case errors.As(err, &held):
		f.Kind = apiv1.Failure_KIND_LOCK_HELD
		l := held.Lock
		l.Token = ""
		f.LockJson, _ = json.Marshal(l)
	case errors.Is(err, core.ErrBlocked):
		f.Kind = apiv1.Failure_KIND_BLOCKED
	case errors.Is(err, core.ErrInvalid):
		f.Kind = apiv1.Failure_KIND_INVALID_ARGUMENT
	case errors.Is(err, core.ErrUnavailable):
		f.Kind = apiv1.Failure_KIND_UNAVAILABLE
	case errors.Is(err, core.ErrNotFound):
		f.Kind = apiv1.Failure_KIND_NOT_FOUND
	}
	return f
}

// Deployments lists an environment's deployments.
func (s *Server) Deployments(ctx context.Context, req *apiv1.DeploymentsRequest) (*apiv1.DeploymentsResponse, error) {
	if _, err := s.o.Identify(ctx); err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	deps, err := s.eng.Deployments(ctx, core.Ref{Service: req.Service, Env: req.Env}, int(req.Limit))
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if deps == nil {
		deps = []core.Deployment{}
	}
	b, err := json.Marshal(deps)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encoding deployments: %v", err)
	}
	return &apiv1.DeploymentsResponse{DeploymentsJson: b}, nil
}

// Release reads one release.
func (s *Server) Release(ctx context.Context, req *apiv1.ReleaseRequest) (*apiv1.ReleaseResponse, error) {
	if _, err := s.o.Identify(ctx); err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	rel, err := s.eng.Release(ctx, req.Service, req.Version)
	if err != nil {
		return &apiv1.ReleaseResponse{Failure: FailureOf(err)}, nil
	}
	b, err := json.Marshal(rel)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encoding the release: %v", err)
	}
	return &apiv1.ReleaseResponse{ReleaseJson: b}, nil
}

// Watch records the caller as watching while the stream is open.
func (s *Server) Watch(req *apiv1.WatchRequest, stream grpc.ServerStreamingServer[apiv1.WatchResponse]) error {
	ctx := stream.Context()
	var asked core.Actor
	if len(req.ActorJson) > 0 {
		if err := json.Unmarshal(req.ActorJson, &asked); err != nil {
			return status.Errorf(codes.InvalidArgument, "the actor is not an actor: %v", err)
		}
	}
	actor, err := s.actor(ctx, asked)
	if err != nil {
		return err
	}
	id := req.Id
	if id == "" || len(id) > 64 {
		id = core.NewID()
	}
	id, stop := s.eng.WatchAs(ctx, id, actor)
	defer stop()
	if err := stream.Send(&apiv1.WatchResponse{Id: id}); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	return nil
}

// Status reads the project's status.
func (s *Server) Status(ctx context.Context, _ *apiv1.StatusRequest) (*apiv1.StatusResponse, error) {
	if _, err := s.o.Identify(ctx); err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	snap := s.eng.Snapshot()
	st, err := ReadStatus(ctx, s.eng.Store(), snap.Project, s.o.Services, s.o.Envs, s.eng.Now())
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	// This server runs the error sources: its own picture is the newest.
	if len(snap.Errors) > 0 || len(snap.Verdicts) > 0 {
		st.SetErrors(snap.Errors, snap.Verdicts, s.eng.Now())
	}
	st.SetHosts(snap.Targets)
	rec := s.o.Record
	st.Server = &rec
	b, err := json.Marshal(st)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encoding the status: %v", err)
	}
	return &apiv1.StatusResponse{StatusJson: b}, nil
}

// auditPage bounds one Audit answer.
const auditPage = 1000

// Audit lists audit entries after a sequence number.
func (s *Server) Audit(ctx context.Context, req *apiv1.AuditRequest) (*apiv1.AuditResponse, error) {
	if _, err := s.o.Identify(ctx); err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	limit := int(req.Limit)
	if limit <= 0 || limit > auditPage {
		limit = auditPage
	}
	entries, err := s.eng.Store().Audit(ctx, req.After, limit)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if entries == nil {
		entries = []core.AuditEntry{}
	}
	b, err := json.Marshal(entries)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encoding the audit log: %v", err)
	}
	return &apiv1.AuditResponse{EntriesJson: b}, nil
}

// Info describes the server and the caller.
func (s *Server) Info(ctx context.Context, _ *apiv1.InfoRequest) (*apiv1.InfoResponse, error) {
	you, err := s.actor(ctx, core.Actor{})
	if err != nil {
		return nil, err
	}
	r := s.o.Record
	info := &apiv1.InfoResponse{
		Pid: int64(r.Pid), Host: r.Host, Since: r.Since.Format(time.RFC3339), Version: r.Version,
		Project: s.eng.Snapshot().Project, ConfigPath: s.o.ConfigPath, StatePath: s.o.StatePath,
		SocketPath: r.Socket, LogPath: r.Log, Autostarted: r.Autostarted, Account: s.account,
		You: you.String(), Clients: s.clients.Load(),
	}
	select {
	case <-s.o.Ready:
		info.Ready = true
	default:
	}
	if s.o.NotReady != nil {
		info.NotReady = s.o.NotReady()
	}
	return info, nil
}

// Stop answers, then stops the server.
func (s *Server) Stop(ctx context.Context, _ *apiv1.StopRequest) (*apiv1.StopResponse, error) {
	if !s.o.MayStop(ctx) {
		who := "you"
		if a, err := s.o.Identify(ctx); err == nil {
			who = a
		}
		return nil, status.Errorf(codes.PermissionDenied, "%s may not stop the server: it runs as %s, and only %s or root may stop it", who, s.account, s.account)
	}
	if s.o.Stop != nil {
		// After this answer has left: the caller then waits for the
		// socket to go away.
		time.AfterFunc(10*time.Millisecond, s.o.Stop)
	}
	return &apiv1.StopResponse{}, nil
}

// Logs sends the server's recent output, then follows it.
func (s *Server) Logs(req *apiv1.LogsRequest, stream grpc.ServerStreamingServer[apiv1.LogsResponse]) error {
	if _, err := s.o.Identify(stream.Context()); err != nil {
		return status.Error(codes.Unauthenticated, err.Error())
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-s.ctx.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	return s.o.Log.Tail(ctx, int(req.Lines), req.Follow, func(lines []string) error {
		return stream.Send(&apiv1.LogsResponse{Lines: lines})
	})
}

// encoder turns events into JSON once for every client: all subscribers
// get the same event (same Seq) at about the same time, so the newest
// encodings are kept by Seq.
type encoder struct {
	mu   sync.Mutex
	ring [4096]struct {
		seq uint64
		js  []byte
	}
}

func newEncoder() *encoder { return &encoder{} }

func (e *encoder) event(ev core.Event) ([]byte, error) {
	cacheable := ev.Seq != 0 && ev.Kind != core.EvResync
	slot := &e.ring[ev.Seq%uint64(len(e.ring))]
	if cacheable {
		e.mu.Lock()
		if slot.seq == ev.Seq && slot.js != nil {
			js := slot.js
			e.mu.Unlock()
			return js, nil
		}
		e.mu.Unlock()
	}
	js, err := json.Marshal(sanitizeEvent(ev))
	if err != nil {
		return nil, err
	}
	if cacheable {
		e.mu.Lock()
		slot.seq, slot.js = ev.Seq, js
		e.mu.Unlock()
	}
	return js, nil
}

// sanitizeEvent removes what must not leave the server: a lock's token is
// the capability to release it.
func sanitizeEvent(ev core.Event) core.Event {
	if ev.Lock != nil && ev.Lock.Token != "" {
		l := *ev.Lock
		l.Token = ""
		ev.Lock = &l
	}
	if ev.Snapshot != nil {
		s := sanitizeSnapshot(*ev.Snapshot)
		ev.Snapshot = &s
	}
	return ev
}

func sanitizeSnapshot(s core.Snapshot) core.Snapshot {
	locks := make(map[core.Ref]core.Lock, len(s.Locks))
	for k, l := range s.Locks {
		l.Token = ""
		locks[k] = l
	}
	s.Locks = locks
	return s
}
