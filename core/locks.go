package core

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ripcordhq/ripcord/core/procid"
)

// Locks have an owner, not just a name. An operation's lock (taken by
// every command that changes what serves traffic) belongs to the command
// holding its token: it is heartbeated by the engine that runs the
// command, expires a TTL after that process stops, and nobody else
// releases it without force. A person's lock (`ripcord lock`) belongs to
// the person: held until they unlock it or until the TTL they gave, and
// their own commands run under it. Every expiry and every force is
// audited.

// system is the actor of what the engine does by itself.
var system = Actor{Name: "ripcord", Automation: true}

// AcquireLock takes the operation lock for ref on behalf of actor (or
// takes it over with force, audited) and publishes it. The engine
// heartbeats it until ReleaseLock.
func (e *Engine) AcquireLock(ctx context.Context, ref Ref, actor Actor, reason string, force bool) (Lock, error) {
	now := e.clock()
	l := Lock{Ref: ref, Kind: LockOperation, Holder: actor, Reason: reason, Since: now, ExpiresAt: now.Add(e.lockTTL), Token: NewID(), Owner: e.process}
	e.hold.Lock()
	if h, ok := e.held[ref]; ok && h.Holder == actor {
		l.Token, l.Reason = h.Token, h.Reason // re-acquired: the holder keeps it
	}
	e.hold.Unlock()
	got, err := e.take(ctx, l, force)
	if err != nil {
		return Lock{}, err
	}
	e.keepAlive(got)
	e.publishLock(ctx, ref)
	return got, nil
}

// RecoverLock takes ref's operation lock to finish an operation a
// previous process left: like AcquireLock, but a lock whose process is
// gone (or whose time is up) is taken over without force, audited as
// such. A lock a live process holds is refused: the operation is still
// that process's.
func (e *Engine) RecoverLock(ctx context.Context, ref Ref, reason string) (Lock, error) {
	l, err := e.AcquireLock(ctx, ref, system, reason, false)
	var held *LockHeldError
	if !errors.As(err, &held) || !held.OwnerGone {
		return l, err
	}
	now := e.clock()
	l = Lock{Ref: ref, Kind: LockOperation, Holder: system, Reason: reason, Since: now, ExpiresAt: now.Add(e.lockTTL), Token: NewID(), Owner: e.process}
	prev, err := e.store.ForceLock(ctx, l)
	if err != nil {
		return Lock{}, fmt.Errorf("take over the lock of %s: %w", ref, err)
	}
	from := held.Lock.Holder.String()
	if prev != nil {
		from = prev.Holder.String()
	}
	if _, err := e.Audit(ctx, AuditEntry{Actor: system, Action: "lock-recover", Ref: ref, From: from, Reason: reason,
		Outcome: fmt.Sprintf("taken over: the process that held it (pid %d on %s) is gone", held.Lock.Owner.PID, held.Lock.Owner.Host)}); err != nil {
		_ = e.store.ReleaseLock(context.WithoutCancel(ctx), ref, l.Token)
		return Lock{}, err
	}
	e.keepAlive(l)
	e.publishLock(ctx, ref)
	return l, nil
}

// take acquires l, auditing the locks that expired in its way, and with
// force takes it over from a live holder (audited).
func (e *Engine) take(ctx context.Context, l Lock, force bool) (Lock, error) {
	got, expired, err := e.store.AcquireLock(ctx, l)
	if aerr := e.auditExpired(ctx, expired, l.Holder); aerr != nil && err == nil {
		err = aerr
	}
	var held *LockHeldError
	if errors.As(err, &held) {
		held.OwnerGone = held.Lock.Kind != LockPerson && held.Lock.Owner.Check() == procid.Gone
		if !force {
			return Lock{}, err
		}
		prev, ferr := e.store.ForceLock(ctx, l)
		if ferr != nil {
			return Lock{}, fmt.Errorf("force lock %s: %w", l.Ref, ferr)
		}
		got, err = l, nil
		from, outcome := "", "taken over"
		if prev != nil {
			from = prev.Holder.String()
			if held.OwnerGone {
				outcome += fmt.Sprintf(" from a process that is gone (pid %d on %s)", prev.Owner.PID, prev.Owner.Host)
			}
		}
		if _, aerr := e.Audit(ctx, AuditEntry{Actor: l.Holder, Action: "lock-force", Ref: l.Ref, From: from, Reason: l.Reason, Outcome: outcome}); aerr != nil {
			return got, aerr
		}
	}
	if err != nil {
		return Lock{}, err
	}
	return got, nil
}

// auditExpired records that locks expired: whoever held them learns from
// the audit log why they no longer do.
func (e *Engine) auditExpired(ctx context.Context, expired []Lock, by Actor) error {
	for _, l := range expired {
		why := "its TTL ran out"
		if l.Kind != LockPerson {
			why = "no heartbeat from its process"
			if l.Owner.Check() == procid.Gone {
				why = fmt.Sprintf("its process (pid %d on %s) is gone", l.Owner.PID, l.Owner.Host)
			}
		}
		outcome := fmt.Sprintf("the %s lock expired at %s: %s", lockKind(l), l.ExpiresAt.UTC().Format(time.RFC3339), why)
		if by.Name != "" {
			outcome += "; taken by " + by.String()
		}
		if _, err := e.Audit(context.WithoutCancel(ctx), AuditEntry{Actor: system, Action: "lock-expired", Ref: l.Ref, From: l.Holder.String(), Reason: l.Reason, Outcome: outcome}); err != nil {
			return err
		}
	}
	return nil
}

func lockKind(l Lock) string {
	if l.Kind == LockPerson {
		return "person's"
	}
	return "operation's"
}

// ExpireLocks removes the locks whose time is up, audits each and
// publishes what changed. A process that runs an engine for long calls it
// now and then (KeepLocks); taking a lock also expires those in its way.
func (e *Engine) ExpireLocks(ctx context.Context) error {
	expired, err := e.store.ExpireLocks(ctx, e.clock())
	if err != nil {
		return fmt.Errorf("expire locks: %w", err)
	}
	if err := e.auditExpired(ctx, expired, Actor{}); err != nil {
		return err
	}
	for _, l := range expired {
		e.publishLock(ctx, l.Ref)
	}
	return nil
}

// KeepLocks expires locks whose time is up every interval until ctx ends.
func (e *Engine) KeepLocks(ctx context.Context, every time.Duration) {
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if err := e.ExpireLocks(ctx); err != nil && ctx.Err() == nil {
				e.Publish(Event{Kind: EvLog, Log: &LogLine{Time: e.clock(), Source: "locks", Text: err.Error()}})
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// keepAlive heartbeats an operation's lock every third of the TTL until
// it is released, so an operation (or a CLI command following a rollout)
// that lasts longer than the TTL keeps its lock, while a process that dies
// loses it within one TTL. A lock found taken over is published as a
// notice and no longer heartbeated.
func (e *Engine) keepAlive(l Lock) {
	if l.ExpiresAt.IsZero() {
		return
	}
	e.hold.Lock()
	defer e.hold.Unlock()
	if _, ok := e.beats[l.Token]; ok {
		return // re-acquired by its holder: already beating
	}
	stop := make(chan struct{})
	e.beats[l.Token] = stop
	go func() {
		t := time.NewTicker(e.lockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), e.lockTTL/3)
			err := e.store.Heartbeat(ctx, l.Ref, l.Token, e.clock().Add(e.lockTTL))
			cancel()
			if errors.Is(err, ErrLockLost) {
				e.stopBeat(l.Token)
				e.Publish(Event{Kind: EvNotice, Ref: l.Ref, Final: true, Severity: SeverityWarn, Notice: fmt.Sprintf("lock on %s held by %s was lost: it expired or was taken over", l.Ref, l.Holder)})
				return
			}
		}
	}()
}

// stopBeat ends the heartbeat of the lock with token, if it runs.
func (e *Engine) stopBeat(token string) {
	e.hold.Lock()
	defer e.hold.Unlock()
	if stop, ok := e.beats[token]; ok {
		close(stop)
		delete(e.beats, token)
	}
}

// Owns reports whether this engine holds the lock with token.
func (e *Engine) Owns(token string) bool {
	e.hold.Lock()
	defer e.hold.Unlock()
	_, ok := e.beats[token]
	return ok
}

// ReleaseLock gives a lock back and publishes that.
func (e *Engine) ReleaseLock(ctx context.Context, l Lock) error {
	e.hold.Lock()
	h, ok := e.held[l.Ref]
	e.hold.Unlock()
	if ok && h.Token == l.Token {
		return nil // Hold's caller gives it back with Unhold
	}
	e.stopBeat(l.Token)
	if err := e.store.ReleaseLock(ctx, l.Ref, l.Token); err != nil {
		return fmt.Errorf("release lock %s: %w", l.Ref, err)
	}
	e.publishLock(ctx, l.Ref)
	return nil
}

// publishLock publishes the lock a screen shows for ref: a person's lock
// before an operation's, none when both are free. Tokens are never
// published: they are capabilities, not facts.
func (e *Engine) publishLock(ctx context.Context, ref Ref) {
	locks, err := e.store.Locks(context.WithoutCancel(ctx))
	if err != nil {
		return // the next refresh shows it
	}
	for _, l := range effectiveLocks(locks) {
		if l.Ref == ref {
			e.Publish(Event{Kind: EvLock, Ref: ref, Final: true, Lock: &l})
			return
		}
	}
	e.Publish(Event{Kind: EvLock, Ref: ref, Final: true})
}

// effectiveLocks is one lock per environment, the one a person meets
// first: a person's lock, else an operation's. Tokens are cleared.
func effectiveLocks(locks []Lock) []Lock {
	var out []Lock
	idx := map[Ref]int{}
	for _, l := range locks {
		l.Token = ""
		i, ok := idx[l.Ref]
		switch {
		case !ok:
			idx[l.Ref] = len(out)
			out = append(out, l)
		case l.IsPerson():
			out[i] = l
		}
	}
	return out
}

// Hold takes ref's operation lock for actor before anything else happens
// and keeps it until Unhold. A process that must start its providers
// before it can act (the CLI) thereby meets a rival at the lock — told who
// holds it — rather than halfway through an operation. Commands this
// engine runs for the same actor and ref use the held lock.
func (e *Engine) Hold(ctx context.Context, ref Ref, actor Actor, reason string, force bool) error {
	l, err := e.AcquireLock(ctx, ref, actor, reason, force)
	if err != nil {
		return err
	}
	e.hold.Lock()
	e.held[ref] = l
	e.hold.Unlock()
	return nil
}

// Unhold releases a lock taken with Hold.
func (e *Engine) Unhold(ctx context.Context, ref Ref) error {
	e.hold.Lock()
	l, ok := e.held[ref]
	delete(e.held, ref)
	e.hold.Unlock()
	if !ok {
		return nil
	}
	return e.ReleaseLock(ctx, l)
}

// lockHandler takes a person's lock: held until that person unlocks it,
// or until cmd.TTL. Locking again changes the reason and TTL.
func lockHandler(ctx context.Context, e *Engine, cmd Command) (Result, error) {
	if cmd.TTL < 0 {
		return Result{}, fmt.Errorf("lock %s: the TTL %s is negative", cmd.Ref, cmd.TTL)
	}
	now := e.clock()
	l := Lock{Ref: cmd.Ref, Kind: LockPerson, Holder: cmd.Actor, Reason: cmd.Reason, Since: now, Token: NewID(), Owner: e.process}
	if cmd.TTL > 0 {
		l.ExpiresAt = now.Add(cmd.TTL)
	}
	mine, err := e.locksOf(ctx, cmd.Ref)
	if err != nil {
		return Result{}, err
	}
	for _, c := range mine {
		if c.IsPerson() && SamePerson(c.Holder, cmd.Actor) {
			l.Token = c.Token
		}
	}
	got, err := e.take(ctx, l, cmd.Force)
	if err != nil {
		return Result{Outcome: "refused", Message: err.Error()}, err
	}
	until := "until unlocked"
	if !got.ExpiresAt.IsZero() {
		until = "until " + got.ExpiresAt.UTC().Format(time.RFC3339)
	}
	if _, err := e.Audit(ctx, AuditEntry{Actor: cmd.Actor, Action: "lock", Ref: cmd.Ref, Reason: cmd.Reason, Outcome: "locked " + until}); err != nil {
		return Result{}, err
	}
	e.publishLock(ctx, cmd.Ref)
	return Result{Outcome: "locked", Message: fmt.Sprintf("%s locked by %s %s", cmd.Ref, cmd.Actor, until)}, nil
}

// locksOf lists ref's locks, tokens included (for the engine's own use).
func (e *Engine) locksOf(ctx context.Context, ref Ref) ([]Lock, error) {
	all, err := e.store.Locks(ctx)
	if err != nil {
		return nil, fmt.Errorf("locks of %s: %w", ref, err)
	}
	var out []Lock
	for _, l := range all {
		if l.Ref == ref {
			out = append(out, l)
		}
	}
	return out, nil
}

// unlockHandler releases the person's own lock. Anything else — another
// person's lock, or an operation's lock, which belongs to the command
// holding it even when that command is the same person's — needs force,
// and is audited as forced.
func unlockHandler(ctx context.Context, e *Engine, cmd Command) (Result, error) {
	locks, err := e.locksOf(ctx, cmd.Ref)
	if err != nil {
		return Result{}, fmt.Errorf("unlock %s: %w", cmd.Ref, err)
	}
	if len(locks) == 0 {
		return Result{Outcome: "unlocked", Message: cmd.Ref.String() + " was not locked"}, nil
	}
	now := e.clock()
	type release struct {
		lock   Lock
		action string
	}
	var (
		rel     []release
		blocked *LockHeldError
		kept    []Lock
	)
	for _, l := range locks {
		own := l.IsPerson() && SamePerson(l.Holder, cmd.Actor)
		switch {
		case own:
			rel = append(rel, release{l, "unlock"})
		case l.Expired(now):
			rel = append(rel, release{l, "expired"})
		case cmd.Force:
			rel = append(rel, release{l, "unlock-force"})
		default:
			kept = append(kept, l)
			if blocked == nil {
				shown := l
				shown.Token = ""
				blocked = &LockHeldError{Lock: shown, OwnerGone: !l.IsPerson() && l.Owner.Check() == procid.Gone}
			}
		}
	}
	if len(rel) == 0 {
		msg := blocked.Error()
		if !blocked.Lock.IsPerson() && !blocked.OwnerGone {
			msg += "; an operation's lock is released by the command that holds it when it ends (--force breaks it, audited)"
		} else if blocked.Lock.IsPerson() {
			msg += "; only " + blocked.Lock.Holder.Name + " unlocks it without --force"
		}
		return Result{Outcome: "refused", Message: msg}, blocked
	}
	for _, r := range rel {
		l := r.lock
		if r.action == "expired" {
			if err := e.store.ReleaseLock(ctx, l.Ref, l.Token); err != nil && !errors.Is(err, ErrLockLost) {
				return Result{}, fmt.Errorf("unlock %s: %w", cmd.Ref, err)
			}
			if err := e.auditExpired(ctx, []Lock{l}, cmd.Actor); err != nil {
				return Result{}, err
			}
			continue
		}
		e.stopBeat(l.Token)
		if err := e.store.ReleaseLock(ctx, l.Ref, l.Token); err != nil && !errors.Is(err, ErrLockLost) {
			return Result{}, fmt.Errorf("unlock %s: %w", cmd.Ref, err)
		}
		outcome := "unlocked"
		if r.action == "unlock-force" {
			outcome = fmt.Sprintf("broke the %s lock", lockKind(l))
			if !l.IsPerson() {
				outcome += fmt.Sprintf(" (its process, pid %d on %s, is %s)", l.Owner.PID, l.Owner.Host, l.Owner.Check())
			}
		}
		if _, err := e.Audit(ctx, AuditEntry{Actor: cmd.Actor, Action: r.action, Ref: cmd.Ref, From: l.Holder.String(), Reason: cmd.Reason, Outcome: outcome}); err != nil {
			return Result{}, err
		}
	}
	e.publishLock(ctx, cmd.Ref)
	msg := cmd.Ref.String() + " unlocked"
	for _, l := range kept {
		msg += fmt.Sprintf("; %s's %s still holds it until it ends", l.Holder, l.Reason)
	}
	return Result{Outcome: "unlocked", Message: msg}, nil
}

// Holds reports whether this engine holds ref's lock with Hold.
func (e *Engine) Holds(ref Ref) bool {
	e.hold.Lock()
	defer e.hold.Unlock()
	_, ok := e.held[ref]
	return ok
}
