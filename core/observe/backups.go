package observe

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// backupState is the facts last reported for every watched set.
type backupState struct {
	mu      sync.Mutex
	entries []*backupEntry
}

type backupEntry struct {
	ref       core.Ref
	set       BackupSet
	group     *backupGroup
	facts     core.BackupFacts
	published bool
	state     core.FreshnessState
}

// backupGroup is the sets one source reports.
type backupGroup struct {
	src     core.BackupSource
	entries []*backupEntry
	strays  map[string]bool // set names reported but not configured, logged once
	// verifying and verifyTried follow the verifies the observer asks
	// for, per set: one at a time, at most once per the set's VerifyEvery.
	verifying   map[string]bool
	verifyTried map[string]time.Time
}

func (ob *Observer) startBackups(ctx context.Context) {
	ob.backups = &backupState{}
	var groups []*backupGroup
	for ref, sets := range ob.o.Backups {
		for _, set := range sets {
			if set.Source == nil {
				continue
			}
			e := &backupEntry{ref: ref, set: set}
			ob.backups.entries = append(ob.backups.entries, e)
			var g *backupGroup
			for _, have := range groups {
				if sameSource(have.src, set.Source) {
					g = have
					break
				}
			}
			if g == nil {
				g = &backupGroup{src: set.Source, strays: map[string]bool{}, verifying: map[string]bool{}, verifyTried: map[string]time.Time{}}
				groups = append(groups, g)
			}
			g.entries = append(g.entries, e)
			e.group = g
		}
	}
	for _, g := range groups {
		ob.spawn(func() { ob.watchBackups(ctx, g) })
	}
	if len(ob.backups.entries) > 0 {
		ob.spawn(func() { ob.rejudgeBackups(ctx) })
	}
}

// sameSource reports whether two sets are served by one source, which is
// then watched once. Sources whose type cannot be compared are watched
// apart.
func sameSource(a, b core.BackupSource) bool {
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	return ta == tb && ta.Comparable() && a == b
}

func (ob *Observer) watchBackups(ctx context.Context, g *backupGroup) {
	var names []string
	for _, e := range g.entries {
		names = append(names, e.ref.String()+" "+e.set.Name)
	}
	ob.retry(ctx, g.entries[0].ref, "watch backups ("+strings.Join(names, ", ")+")", func(ctx context.Context) error {
		return g.src.WatchFreshness(ctx, func(f core.BackupFacts) { ob.backupFacts(g, f) })
	}, func(err error) {
		// The source cannot be read: every set it serves is unknown, with
		// the error as the reason, until it reports again.
		ob.backups.mu.Lock()
		defer ob.backups.mu.Unlock()
		now := ob.eng.Now()
		for _, e := range g.entries {
			e.facts.Unreadable = err.Error()
			ob.judgeBackup(e, now)
		}
	})
}

func (ob *Observer) backupFacts(g *backupGroup, f core.BackupFacts) {
	ob.backups.mu.Lock()
	defer ob.backups.mu.Unlock()
	now := ob.eng.Now()
	matched := false
	for _, e := range g.entries {
		if f.Set == e.set.Name || (f.Set == "" && len(g.entries) == 1) {
			e.facts = f
			ob.judgeBackup(e, now)
			matched = true
		}
	}
	if !matched && !g.strays[f.Set] {
		g.strays[f.Set] = true
		ob.logf(g.entries[0].ref, "backup source reported set %q, which no environment watches", f.Set)
	}
}

// judgeBackup publishes a set's freshness: final when its state changes,
// else as progress (its age moved on).
func (ob *Observer) judgeBackup(e *backupEntry, now time.Time) {
	f := e.facts
	f.Set = e.set.Name
	fr := core.JudgeBackup(e.ref, f, e.set.Policy, now)
	final := !e.published || e.state != fr.State
	e.published, e.state = true, fr.State
	ob.eng.Publish(core.Event{Kind: core.EvBackup, Ref: e.ref, Final: final, Key: "backup/" + e.ref.String() + "/" + e.set.Name, Backup: &fr})
}

// rejudgeBackups re-judges every set on the engine's clock, so ages
// advance and a source that went quiet becomes unknown per its policy.
func (ob *Observer) rejudgeBackups(ctx context.Context) {
	tick := time.NewTicker(ob.o.Rejudge)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ob.backups.mu.Lock()
		now := ob.eng.Now()
		for _, e := range ob.backups.entries {
			ob.judgeBackup(e, now)
			ob.verifyIfDue(ctx, e, now)
		}
		ob.backups.mu.Unlock()
	}
}

// verifyIfDue asks the source to verify a set whose policy wants a
// verify every so often and whose last one is older than that (or that
// was never verified): the tool's check runs, and its outcome arrives as
// the set's facts. At most one verify of a set runs at a time, and a set
// is asked at most once per VerifyEvery, so a verify that keeps failing
// to run does not run the tool in a loop. Called with ob.backups.mu held.
func (ob *Observer) verifyIfDue(ctx context.Context, e *backupEntry, now time.Time) {
	every := e.set.Policy.VerifyEvery
	g := e.group
	name := e.set.Name
	if every <= 0 || g == nil || g.verifying[name] {
		return
	}
	if v := e.facts.VerifiedAt; !v.IsZero() && now.Sub(v) < every {
		return
	}
	if tried, ok := g.verifyTried[name]; ok && now.Sub(tried) < every {
		return
	}
	g.verifying[name], g.verifyTried[name] = true, now
	ob.spawn(func() {
		facts, err := g.src.Verify(ctx, name)
		if err == nil && facts.Set == "" {
			facts.Set = name
		}
		if err != nil {
			if ctx.Err() == nil {
				ob.logf(e.ref, "verify of backup set %s: %v", name, err)
			}
		} else {
			ob.backupFacts(g, facts)
		}
		ob.backups.mu.Lock()
		delete(g.verifying, name)
		ob.backups.mu.Unlock()
	})
}
