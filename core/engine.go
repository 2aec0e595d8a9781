package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ripcordhq/ripcord/core/procid"
)

// CommandKind names what a person (or automation) asks the engine to do.
type CommandKind string

const (
	CmdPromote     CommandKind = "promote"      // advance one rollout step, or start a rollout
	CmdFullPromote CommandKind = "full-promote" // skip the remaining steps (audited as such)
	CmdRollback    CommandKind = "rollback"     // to the last good or a named kept release
	CmdAbort       CommandKind = "abort"        // traffic back to stable, candidate kept
	CmdPause       CommandKind = "pause"
	CmdResume      CommandKind = "resume"
	CmdRetry       CommandKind = "retry"
	CmdLock        CommandKind = "lock"
	CmdUnlock      CommandKind = "unlock"
	CmdClearHold   CommandKind = "clear-hold" // let automation promote a rolled-back release again
	CmdBackupNow   CommandKind = "backup-now" // run a backup set's backup where its provider can
	// CmdStepLog reads the tail of pipeline steps' logs from the service's
	// pipeline source, once (Command.Run, Command.Steps); the lines come
	// back in Result.Log.
	CmdStepLog CommandKind = "step-log"
)

// Reads reports whether a command kind only reads: it changes nothing, so
// it takes no lock, writes no audit entry, and any person who may watch
// the project may run it.
func (k CommandKind) Reads() bool { return k == CmdStepLog }

// Command is everything a client can ask of the engine. The terminal, the
// SSH bastion and the CLI all send the same commands, so they behave alike.
type Command struct {
	Kind    CommandKind `json:"kind"`
	Ref     Ref         `json:"ref"`
	Version string      `json:"version,omitempty"` // target release where it applies
	Actor   Actor       `json:"actor"`
	Reason  string      `json:"reason,omitempty"`
	// Overrides names gates the actor chose to override; each needs Reason.
	Overrides []string `json:"overrides,omitempty"`
	// Force takes over a lock someone else holds (audited).
	Force bool `json:"force,omitempty"`
	// TTL bounds a person's lock (CmdLock); zero holds it until unlock.
	TTL time.Duration `json:"ttl,omitempty"`
	// Run and Steps name a pipeline run of Ref.Service and its steps
	// ("stage/step") for CmdStepLog.
	Run   string   `json:"run,omitempty"`
	Steps []string `json:"steps,omitempty"`
}

// Result is what a command did.
type Result struct {
	OperationID string       `json:"operation_id,omitempty"`
	Outcome     string       `json:"outcome"`
	Message     string       `json:"message"`
	Gates       []GateResult `json:"gates,omitempty"`
	// Log is what a command that reads logs (CmdStepLog) read, oldest
	// first, already redacted and escaped.
	Log []LogLine `json:"log,omitempty"`
}

// Handler executes one kind of command.
type Handler func(ctx context.Context, e *Engine, cmd Command) (Result, error)

// ErrUnavailable is returned for a command no handler serves in this
// configuration (for example, rollback with no deploy target configured).
var ErrUnavailable = errors.New("not available in this configuration")

// ErrBlocked wraps a refusal by a gate; the Result lists the gates.
var ErrBlocked = errors.New("blocked by a gate")

// ErrInvalid marks a command that cannot run as given (no actor, an
// unknown service or environment, an override without a reason), as
// opposed to one refused by the state of the world.
var ErrInvalid = errors.New("invalid command")

// invalidError is a command's own fault; its text stays as written.
type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(format string, a ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, a...)}
}

// EngineOptions configures an Engine.
type EngineOptions struct {
	Project  string
	Services []string
	Envs     []string // in promotion order
	Store    Store
	Clock    func() time.Time
	// LockTTL is how long an operation's lock lives without a heartbeat.
	LockTTL time.Duration
	// Process owns the locks this engine takes (default: this process),
	// so another engine can tell a lock whose process died.
	Process procid.ID
	// QueueLimit bounds each subscriber's pending events.
	QueueLimit int
	// WatchEvery is how often a watching console refreshes its presence
	// and reads the others' (default 5s); one not seen for three times
	// that is gone.
	WatchEvery time.Duration
}

// Engine is the one hub: it holds the current state, fans events out to
// subscribers without ever waiting for them, and runs commands.
type Engine struct {
	store      Store
	clock      func() time.Time
	lockTTL    time.Duration
	process    procid.ID
	queueLimit int
	watchEvery time.Duration

	mu    sync.Mutex
	state Snapshot
	seq   uint64
	subs  map[*Subscription]struct{}

	hmu         sync.RWMutex
	handlers    map[CommandKind]Handler
	unavailable string // why unhandled commands cannot run, when known

	// held are locks taken with Hold: commands on the same ref reuse them
	// instead of taking (and releasing) their own.
	hold sync.Mutex
	held map[Ref]Lock
	// beats stops the heartbeat of each lock this engine holds, by token.
	beats map[string]chan struct{}
}

// NewEngine builds an engine over a store.
func NewEngine(o EngineOptions) *Engine {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.LockTTL <= 0 {
		o.LockTTL = 2 * time.Minute
	}
	if o.Process.IsZero() {
		o.Process = procid.Self()
	}
	if o.WatchEvery <= 0 {
		o.WatchEvery = 5 * time.Second
	}
	e := &Engine{
		store:      o.Store,
		clock:      o.Clock,
		lockTTL:    o.LockTTL,
		process:    o.Process,
		watchEvery: o.WatchEvery,
		queueLimit: o.QueueLimit,
		state:      NewSnapshot(o.Project, o.Services, o.Envs),
		subs:       map[*Subscription]struct{}{},
		handlers:   map[CommandKind]Handler{},
		held:       map[Ref]Lock{},
		beats:      map[string]chan struct{}{},
	}
	e.handlers[CmdLock] = lockHandler
	e.handlers[CmdUnlock] = unlockHandler
	e.handlers[CmdClearHold] = clearHoldHandler
	return e
}

// Store returns the engine's store.
func (e *Engine) Store() Store { return e.store }

// Now is the engine's clock.
func (e *Engine) Now() time.Time { return e.clock() }

// Handle registers the handler for a command kind.
func (e *Engine) Handle(k CommandKind, h Handler) {
	e.hmu.Lock()
	defer e.hmu.Unlock()
	e.handlers[k] = h
}

// Publish stamps an event, folds it into the state and hands it to every
// subscriber. It never blocks on a subscriber.
func (e *Engine) Publish(ev Event) Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq++
	ev.Seq = e.seq
	if ev.Time.IsZero() {
		ev.Time = e.clock()
	}
	e.state.Apply(ev)
	for s := range e.subs {
		s.push(ev)
	}
	return ev
}

// Snapshot returns a copy of the current state.
func (e *Engine) Snapshot() Snapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.state.Clone()
}

// Subscribe returns the current state and a stream of every event after
// it: applying the events in order to the snapshot keeps it current.
func (e *Engine) Subscribe() (Snapshot, *Subscription) {
	s := newSubscription(e, e.queueLimit)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.subs[s] = struct{}{}
	return e.state.Clone(), s
}

func (e *Engine) unsubscribe(s *Subscription) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.subs, s)
}

// Subscribers counts live subscriptions ("who else is watching").
func (e *Engine) Subscribers() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.subs)
}

// Do runs a command on behalf of its actor.
func (e *Engine) Do(ctx context.Context, cmd Command) (Result, error) {
	// What a person typed reaches screens, terminals and the audit log:
	// control characters in it are kept escaped from here on.
	cmd.Actor = PrintableActor(cmd.Actor)
	cmd.Reason, cmd.Version, cmd.Run = Printable(cmd.Reason), Printable(cmd.Version), Printable(cmd.Run)
	if len(cmd.Steps) > 0 {
		steps := make([]string, len(cmd.Steps))
		for i, s := range cmd.Steps {
			steps[i] = Printable(s)
		}
		cmd.Steps = steps
	}
	if len(cmd.Overrides) > 0 {
		overrides := make([]string, len(cmd.Overrides))
		for i, o := range cmd.Overrides {
			overrides[i] = Printable(o)
		}
		cmd.Overrides = overrides
	}
	if cmd.Actor.Name == "" {
		return Result{}, invalid("%s: the command names no actor: every action is recorded against a person", cmd.Kind)
	}
	if err := e.checkRef(cmd.Ref); err != nil {
		return Result{}, invalid("%s: %v", cmd.Kind, err)
	}
	if len(cmd.Overrides) > 0 && cmd.Reason == "" {
		return Result{}, invalid("%s: overriding %v needs a reason", cmd.Kind, cmd.Overrides)
	}
	e.hmu.RLock()
	h, why := e.handlers[cmd.Kind], e.unavailable
	e.hmu.RUnlock()
	if h == nil {
		if why != "" {
			return Result{Outcome: "refused", Message: why}, fmt.Errorf("%s %s: %s: %w", cmd.Kind, cmd.Ref, why, ErrUnavailable)
		}
		return Result{}, fmt.Errorf("%s %s: %w", cmd.Kind, cmd.Ref, ErrUnavailable)
	}
	return h(ctx, e, cmd)
}

func (e *Engine) checkRef(r Ref) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !contains(e.state.Services, r.Service) {
		return fmt.Errorf("unknown service %q (known: %v)", r.Service, e.state.Services)
	}
	if !contains(e.state.Envs, r.Env) {
		return fmt.Errorf("unknown environment %q (known: %v)", r.Env, e.state.Envs)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Audit appends an entry to the audit log and publishes it.
func (e *Engine) Audit(ctx context.Context, a AuditEntry) (AuditEntry, error) {
	if e.store == nil {
		return a, errors.New("audit: no store")
	}
	if a.At.IsZero() {
		a.At = e.clock()
	}
	stored, err := e.store.AppendAudit(ctx, a)
	if err != nil {
		return a, fmt.Errorf("append audit entry %q: %w", a.Action, err)
	}
	e.Publish(Event{Kind: EvAudit, Ref: stored.Ref, Final: true, Audit: &stored})
	return stored, nil
}

func clearHoldHandler(ctx context.Context, e *Engine, cmd Command) (Result, error) {
	if cmd.Version == "" {
		return Result{}, errors.New("clear-hold: name the release version")
	}
	if cmd.Reason == "" {
		return Result{}, errors.New("clear-hold: a reason is required: the release was rolled back for one")
	}
	if err := e.store.SetHold(ctx, cmd.Ref.Service, cmd.Version, false, ""); err != nil {
		return Result{}, fmt.Errorf("clear hold on %s %s: %w", cmd.Ref.Service, cmd.Version, err)
	}
	if _, err := e.Audit(ctx, AuditEntry{Actor: cmd.Actor, Action: "clear-hold", Ref: cmd.Ref, To: cmd.Version, Reason: cmd.Reason, Outcome: "hold cleared"}); err != nil {
		return Result{}, err
	}
	return Result{Outcome: "hold cleared", Message: fmt.Sprintf("%s %s may be promoted again", cmd.Ref.Service, cmd.Version)}, nil
}

// NewID returns a random identifier for operations and lock tokens.
func NewID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // the kernel's RNG does not fail
	}
	return hex.EncodeToString(b[:])
}

// Restore loads what the store remembers into the engine's state — the
// newest deployment of every service and environment, the locks, the
// unfinished operations and the recent audit log — so a console started
// after another one (or after a crash) shows the world as it is, not empty.
func (e *Engine) Restore(ctx context.Context) error {
	if err := e.refresh(ctx); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// Watch records actor's console as watching the project until ctx ends or
// stop is called, and keeps the engine's snapshot of who watches current
// (EvWatchers). It returns the watcher's id, so a screen can tell itself
// from the others.
func (e *Engine) Watch(ctx context.Context, actor Actor) (id string, stop func()) {
	return e.WatchAs(ctx, NewID(), actor)
}

// WatchAs is Watch under a given watcher id: a screen that reconnects to
// the project's server keeps the id it had, so it still tells itself from
// the others.
func (e *Engine) WatchAs(ctx context.Context, id string, actor Actor) (string, func()) {
	if e.store == nil {
		return id, func() {} // nowhere to meet the others
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	since := e.clock()
	beat := func() {
		now := e.clock()
		if err := e.store.PutWatcher(ctx, Watcher{ID: id, Actor: actor, Since: since, SeenAt: now}); err != nil {
			return // the next beat tries again; presence is a courtesy
		}
		ws, err := e.store.Watchers(ctx, now.Add(-3*e.watchEvery))
		if err != nil {
			return
		}
		e.Publish(Event{Kind: EvWatchers, Key: "watchers", Watchers: ws})
	}
	go func() {
		defer close(done)
		t := time.NewTicker(e.watchEvery)
		defer t.Stop()
		for beat(); ; beat() {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	return id, func() {
		once.Do(func() {
			cancel()
			<-done
			dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer dcancel()
			_ = e.store.DropWatcher(dctx, id)
		})
	}
}

// SetUnavailable says why commands without a handler cannot run here
// (the providers did not start), so the refusal names the cause instead of
// "not available in this configuration".
func (e *Engine) SetUnavailable(why string) {
	e.hmu.Lock()
	e.unavailable = why
	e.hmu.Unlock()
	e.publishUnavailable(why)
}

// Follow keeps the snapshot current with what other processes write to
// the store — their deployments, locks, unfinished operations and audit
// entries — every interval until ctx ends. A console that does not run
// the providers itself (another process on the machine does) still shows
// every change, a couple of seconds late.
func (e *Engine) Follow(ctx context.Context, every time.Duration) {
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		var shared time.Time // the newest shared fact read
		for {
			err := e.refresh(ctx)
			if err == nil {
				shared, err = e.readShared(ctx, shared)
			}
			if err != nil && ctx.Err() == nil {
				e.Publish(Event{Kind: EvLog, Log: &LogLine{Time: e.clock(), Source: "store", Text: "reading the store: " + err.Error()}})
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// readShared publishes the facts another console shared after a time and
// returns the newest one's time.
func (e *Engine) readShared(ctx context.Context, after time.Time) (time.Time, error) {
	facts, err := e.store.Shared(ctx, after)
	if err != nil {
		return after, fmt.Errorf("shared facts: %w", err)
	}
	for _, f := range facts {
		var ev Event
		if err := json.Unmarshal(f.Event, &ev); err != nil {
			return after, fmt.Errorf("shared fact %s: %w", f.Key, err)
		}
		ev.Seq, ev.Final, ev.Key = 0, true, ""
		e.Publish(ev)
		if f.At.After(after) {
			after = f.At
		}
	}
	return after, nil
}

// Share writes, every interval until ctx ends, the newest event of each
// kind about each thing the providers report (verdicts, error windows,
// backup freshness, pipeline runs, target status, plans, provider health),
// so a console that cannot run the providers (another process here runs
// them) shows them too. Only what changed since the last write is written.
func (e *Engine) Share(ctx context.Context, every time.Duration) {
	snap, sub := e.Subscribe()
	go func() {
		defer sub.Close()
		t := time.NewTicker(every)
		defer t.Stop()
		// What was reported before sharing began is shared first.
		pending := map[string]Event{}
		for _, ev := range sharedState(snap) {
			pending[sharedKey(ev)] = ev
		}
		var buf []Event
		for {
			select {
			case <-ctx.Done():
				return
			case <-sub.Ready():
				buf = sub.Drain(buf[:0])
				for _, ev := range buf {
					if k := sharedKey(ev); k != "" {
						pending[k] = ev
					}
				}
				continue
			case <-t.C:
			}
			if len(pending) == 0 {
				continue
			}
			now := e.clock()
			facts := make([]SharedFact, 0, len(pending))
			for k, ev := range pending {
				b, err := json.Marshal(ev)
				if err != nil {
					continue // every shared kind marshals; a bad one is skipped
				}
				facts = append(facts, SharedFact{Key: k, Event: b, At: now})
			}
			if err := e.store.PutShared(ctx, facts); err == nil {
				clear(pending)
			}
		}
	}()
}

// sharedState is a snapshot's shareable facts as the events that made
// them.
func sharedState(s Snapshot) []Event {
	var out []Event
	for ref, v := range s.Verdicts {
		out = append(out, Event{Kind: EvVerdict, Ref: ref, Verdict: &v})
	}
	for ref, ws := range s.Errors {
		for _, w := range ws {
			out = append(out, Event{Kind: EvErrors, Ref: ref, Errors: &w})
		}
	}
	for ref, sets := range s.Backups {
		for _, f := range sets {
			out = append(out, Event{Kind: EvBackup, Ref: ref, Backup: &f})
		}
	}
	for _, r := range s.Pipelines {
		out = append(out, Event{Kind: EvPipeline, Ref: Ref{Service: r.Service}, Pipeline: &r})
	}
	for ref, ts := range s.Targets {
		out = append(out, Event{Kind: EvTarget, Ref: ref, Target: &ts})
	}
	for ref, steps := range s.Plans {
		out = append(out, Event{Kind: EvPlan, Ref: ref, Plan: &RolloutPlan{Ref: ref, Steps: steps}})
	}
	for _, h := range s.Providers {
		out = append(out, Event{Kind: EvProvider, Provider: &h})
	}
	return out
}

// sharedKey names what an event is the newest fact about, or "" for
// events that are not shared (the store has them already, or they are
// this process's own: logs, notices).
func sharedKey(ev Event) string {
	switch ev.Kind {
	case EvVerdict:
		return "verdict/" + ev.Ref.String()
	case EvErrors:
		if ev.Errors != nil {
			return "errors/" + ev.Errors.Ref.String() + "/" + ev.Errors.Release
		}
	case EvBackup:
		if ev.Backup != nil {
			return "backup/" + ev.Backup.Ref.String() + "/" + ev.Backup.Facts.Set
		}
	case EvPipeline:
		if ev.Pipeline != nil {
			return "pipeline/" + ev.Pipeline.Service
		}
	case EvTarget:
		return "target/" + ev.Ref.String()
	case EvPlan:
		if ev.Plan != nil {
			return "plan/" + ev.Plan.Ref.String()
		}
	case EvProvider:
		if ev.Provider != nil {
			return "provider/" + ev.Provider.Name
		}
	}
	return ""
}

// refresh publishes what changed in the store since the snapshot.
func (e *Engine) refresh(ctx context.Context) error {
	snap := e.Snapshot()
	for _, svc := range snap.Services {
		for _, env := range snap.Envs {
			ref := Ref{Service: svc, Env: env}
			deps, err := e.store.Deployments(ctx, ref, 1)
			if err != nil {
				return fmt.Errorf("deployments of %s: %w", ref, err)
			}
			if len(deps) == 0 {
				continue
			}
			d, cur := deps[0], snap.Deployments[ref]
			if d.ID != cur.ID || d.State != cur.State || d.Weight != cur.Weight || d.Step != cur.Step || !d.FinishedAt.Equal(cur.FinishedAt) {
				e.Publish(Event{Kind: EvDeployment, Ref: ref, Final: true, Deployment: &d})
			}
		}
	}
	locks, err := e.store.Locks(ctx)
	if err != nil {
		return fmt.Errorf("locks: %w", err)
	}
	held := map[Ref]bool{}
	for _, l := range effectiveLocks(locks) {
		held[l.Ref] = true
		if cur, ok := snap.Locks[l.Ref]; !ok || cur.Holder != l.Holder || cur.Kind != l.Kind || !cur.Since.Equal(l.Since) || !cur.ExpiresAt.Equal(l.ExpiresAt) {
			e.Publish(Event{Kind: EvLock, Ref: l.Ref, Final: true, Lock: &l})
		}
	}
	for ref := range snap.Locks {
		if !held[ref] {
			e.Publish(Event{Kind: EvLock, Ref: ref, Final: true})
		}
	}
	ops, err := e.store.Unfinished(ctx)
	if err != nil {
		return fmt.Errorf("operations: %w", err)
	}
	open := map[string]bool{}
	for i := range ops {
		op := ops[i]
		open[op.ID] = true
		if cur, ok := snap.Operations[op.ID]; !ok || cur.State != op.State || !cur.UpdatedAt.Equal(op.UpdatedAt) {
			e.Publish(Event{Kind: EvOperation, Ref: op.Ref, Final: true, Operation: &op})
		}
	}
	for id := range snap.Operations {
		if open[id] {
			continue
		}
		op, err := e.store.Operation(ctx, id)
		if err != nil {
			return fmt.Errorf("operation %s: %w", id, err)
		}
		e.Publish(Event{Kind: EvOperation, Ref: op.Ref, Final: true, Operation: &op})
	}
	// New audit entries, oldest first; a snapshot without any (a console
	// starting) gets the recent tail, not the whole log.
	var after int64
	if n := len(snap.Audit); n > 0 {
		after = snap.Audit[n-1].Seq
	}
	var fresh []AuditEntry
	for {
		page, err := e.store.Audit(ctx, after, 1000)
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		fresh = append(fresh, page...)
		if len(fresh) > auditKeep {
			fresh = fresh[len(fresh)-auditKeep:]
		}
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].Seq
	}
	for i := range fresh {
		a := fresh[i]
		e.Publish(Event{Kind: EvAudit, Ref: a.Ref, Final: true, Audit: &a})
	}
	return nil
}
