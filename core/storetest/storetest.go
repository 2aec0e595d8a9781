// Package storetest is the conformance suite every core.Store runs: the
// embedded SQLite store and the PostgreSQL one must behave the same, so
// they are held to the same tests.
//
// Stores keep times to the microsecond, so the suite only uses
// microsecond-precision times and compares them with time.Time.Equal.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// Run runs the suite. open returns a new, empty store for each sub-test;
// Run closes it when the sub-test ends.
func Run(t *testing.T, open func(t *testing.T) core.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s core.Store)
	}{
		{"ReleaseRoundTrip", testReleaseRoundTrip},
		{"ReleaseHold", testReleaseHold},
		{"ReleasesNewestFirst", testReleasesNewestFirst},
		{"Deployments", testDeployments},
		{"AuditChain", testAuditChain},
		{"AuditHasNoMutation", testAuditHasNoMutation},
		{"LockContention", testLockContention},
		{"LockTakeoverAfterExpiry", testLockTakeover},
		{"LockReacquireAndRelease", testLockReacquireAndRelease},
		{"ForceLock", testForceLock},
		{"PersonLockAndOperations", testPersonLock},
		{"ExpireLocks", testExpireLocks},
		{"Journal", testJournal},
		{"ErrorCounts", testErrorCounts},
		{"Watchers", testWatchers},
		{"Shared", testShared},
		{"ConcurrentAudit", testConcurrentAudit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("close store: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// base is a fixed, microsecond-precision instant the suite counts from.
var base = time.Date(2026, 3, 14, 9, 26, 53, 589793000, time.UTC)

var (
	api     = core.Ref{Service: "api", Env: "production"}
	apiStg  = core.Ref{Service: "api", Env: "staging"}
	alice   = core.Actor{Name: "alice", Host: "bastion-1", KeyFingerprint: "SHA256:aliceKEY"}
	bob     = core.Actor{Name: "bob", Host: "laptop"}
	robot   = core.Actor{Name: "ci", Automation: true}
	minute  = time.Minute
	noLimit = 0
)

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("%s: got error %v, want one wrapping core.ErrNotFound", what, err)
	}
}

func testReleaseRoundTrip(t *testing.T, s core.Store) {
	ctx := ctxFor(t)
	want := core.Release{
		Service:        "api",
		Version:        "v1.43.0",
		Commit:         "9f3c2ab",
		Branch:         "main",
		ArtifactDigest: "sha256:9f3c2ab4",
		BuiltAt:        base,
		Migrations: []core.Migration{
			{ID: "0042_add_orders_index", Kind: core.MigrationExpand, File: "db/migrations/0042_add_orders_index.up.sql", Layout: "golang-migrate",
				Reason: "only adds", Changes: []core.SchemaChange{{Kind: core.MigrationExpand, Action: "create index", Table: "orders", Line: 1}}},
			{ID: "0043_drop_legacy_status", Kind: core.MigrationContract, Reason: "drop column orders.legacy_status",
				Changes: []core.SchemaChange{{Kind: core.MigrationContract, Action: "drop column", Table: "orders", Column: "legacy_status", Line: 3}}},
		},
	}
	if err := s.PutRelease(ctx, want); err != nil {
		t.Fatalf("PutRelease: %v", err)
	}
	got, err := s.Release(ctx, "api", "v1.43.0")
	if err != nil {
		t.Fatalf("Release: %v", err)
	}
	assertRelease(t, got, want)
	if !got.HasContract() {
		t.Errorf("the contract migration did not survive the round trip: %+v", got.Migrations)
	}

	// Recording the same version again updates it in place.
	want.ArtifactDigest = "sha256:rebuilt"
	want.Migrations = want.Migrations[:1]
	if err := s.PutRelease(ctx, want); err != nil {
		t.Fatalf("PutRelease again: %v", err)
	}
	got, err = s.Release(ctx, "api", "v1.43.0")
	if err != nil {
		t.Fatalf("Release after update: %v", err)
	}
	assertRelease(t, got, want)
	if rs, err := s.Releases(ctx, "api", noLimit); err != nil || len(rs) != 1 {
		t.Fatalf("Releases after re-recording one version: %d releases, err %v; want 1", len(rs), err)
	}

	// Migrations that could not be read stay unknown, with the reason.
	unread := core.Release{Service: "api", Version: "v1.44.0", BuiltAt: base, MigrationsUnknown: "db/migrations is not in the repository at 9f3c2ab"}
	if err := s.PutRelease(ctx, unread); err != nil {
		t.Fatalf("PutRelease with unknown migrations: %v", err)
	}
	got, err = s.Release(ctx, "api", "v1.44.0")
	if err != nil {
		t.Fatalf("Release with unknown migrations: %v", err)
	}
	assertRelease(t, got, unread)

	_, err = s.Release(ctx, "api", "v0.0.0")
	mustNotFound(t, "Release of an unknown version", err)
	_, err = s.Release(ctx, "web", "v1.43.0")
	mustNotFound(t, "Release of an unknown service", err)
}

func assertRelease(t *testing.T, got, want core.Release) {
	t.Helper()
	if !got.BuiltAt.Equal(want.BuiltAt) {
		t.Errorf("BuiltAt = %v, want %v", got.BuiltAt, want.BuiltAt)
	}
	got.BuiltAt, want.BuiltAt = time.Time{}, time.Time{}
	if len(want.Migrations) == 0 {
		want.Migrations = nil
	}
	if len(got.Migrations) == 0 {
		got.Migrations = nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("release = %+v\nwant      %+v", got, want)
	}
}

func testReleaseHold(t *testing.T, s core.Store) {
	ctx := ctxFor(t)
	r := core.Release{Service: "api", Version: "v1.43.0", BuiltAt: base}
	if err := s.PutRelease(ctx, r); err != nil {
		t.Fatalf("PutRelease: %v", err)
	}
	if err := s.SetHold(ctx, "api", "v1.43.0", true, "rolled back: error spike 6.2x"); err != nil {
		t.Fatalf("SetHold: %v", err)
	}
	got, err := s.Release(ctx, "api", "v1.43.0")
	if err != nil {
		t.Fatalf("Release: %v", err)
	}
	if !got.Held || got.HeldReason != "rolled back: error spike 6.2x" {
		t.Fatalf("after SetHold: held=%v reason=%q", got.Held, got.HeldReason)
	}

	// The pipeline reporting the release again must not lift the hold:
	// only a person does that.
	if err := s.PutRelease(ctx, r); err != nil {
		t.Fatalf("PutRelease of a held release: %v", err)
	}
	got, _ = s.Release(ctx, "api", "v1.43.0")
	if !got.Held || got.HeldReason != "rolled back: error spike 6.2x" {
		t.Fatalf("re-recording the release cleared its hold: held=%v reason=%q", got.Held, got.HeldReason)
	}

	if err := s.SetHold(ctx, "api", "v1.43.0", false, ""); err != nil {
		t.Fatalf("SetHold false: %v", err)
	}
	got, _ = s.Release(ctx, "api", "v1.43.0")
	if got.Held || got.HeldReason != "" {
		t.Fatalf("after clearing the hold: held=%v reason=%q", got.Held, got.HeldReason)
	}

	mustNotFound(t, "SetHold on an unknown release", s.SetHold(ctx, "api", "v9.9.9", true, "x"))
}

func testReleasesNewestFirst(t *testing.T, s core.Store) {
	ctx := ctxFor(t)
	put := func(service, version string, builtAt time.Time) {
		t.Helper()
		if err := s.PutRelease(ctx, core.Release{Service: service, Version: version, BuiltAt: builtAt}); err != nil {
			t.Fatalf("PutRelease %s: %v", version, err)
		}
	}
	// Recorded out of build order; v1.3.0 and v1.3.1 share a build time,
	// so the one recorded later counts as newer.
	put("api", "v1.2.0", base.Add(2*minute))
	put("api", "v1.3.0", base.Add(3*minute))
	put("api", "v1.1.0", base.Add(1*minute))
	put("web", "v9.0.0", base.Add(9*minute))
	put("api", "v1.3.1", base.Add(3*minute))

	rs, err := s.Releases(ctx, "api", noLimit)
	if err != nil {
		t.Fatalf("Releases: %v", err)
	}
	if got, want := versions(rs), "v1.3.1 v1.3.0 v1.2.0 v1.1.0"; got != want {
		t.Fatalf("Releases(api) = %s, want %s", got, want)
	}
	rs, err = s.Releases(ctx, "api", 2)
	if err != nil {
		t.Fatalf("Releases limit 2: %v", err)
	}
	if got, want := versions(rs), "v1.3.1 v1.3.0"; got != want {
		t.Fatalf("Releases(api, 2) = %s, want %s", got, want)
	}
}

func versions(rs []core.Release) string {
	var v []string
	for _, r := range rs {
		v = append(v, r.Version)
	}
	return strings.Join(v, " ")
}

func testDeployments(t *testing.T, s core.Store) {
	ctx := ctxFor(t)
	first := core.Deployment{Ref: api, Version: "v1.42.0", From: "v1.41.0", State: core.DeployHealthy,
		Weight: 100, Step: 3, StartedAt: base, FinishedAt: base.Add(10 * minute), Actor: alice}
	second := core.Deployment{Ref: api, Version: "v1.43.0", From: "v1.42.0", State: core.DeployProgressing,
		Weight: 10, Step: 0, StartedAt: base.Add(time.Hour), Actor: robot}
	other := core.Deployment{Ref: apiStg, Version: "v1.44.0", State: core.DeployPending, StartedAt: base, Actor: bob}

	var err error
	if first.ID, err = s.AddDeployment(ctx, first); err != nil {
		t.Fatalf("AddDeployment first: %v", err)
	}
	if second.ID, err = s.AddDeployment(ctx, second); err != nil {
		t.Fatalf("AddDeployment second: %v", err)
	}
	if other.ID, err = s.AddDeployment(ctx, other); err != nil {
		t.Fatalf("AddDeployment staging: %v", err)
	}
	if first.ID == 0 || first.ID == second.ID || second.ID == other.ID || first.ID == other.ID {
		t.Fatalf("deployment IDs are not distinct and non-zero: %d %d %d", first.ID, second.ID, other.ID)
	}

	// The canary moves on: exposed to traffic, a new state, weight and step.
	second.State, second.Weight, second.Step, second.ExposedAt = core.DeployPaused, 25, 1, base.Add(time.Hour+90*time.Second)
	if err := s.UpdateDeployment(ctx, second); err != nil {
		t.Fatalf("UpdateDeployment: %v", err)
	}

	ds, err := s.Deployments(ctx, api, noLimit)
	if err != nil {
		t.Fatalf("Deployments: %v", err)
	}
	if len(ds) != 2 {
		t.Fatalf("Deployments(%s) returned %d, want 2 (staging's must not appear)", api, len(ds))
	}
	assertDeployment(t, ds[0], second)
	assertDeployment(t, ds[1], first)

	ds, err = s.Deployments(ctx, api, 1)
	if err != nil || len(ds) != 1 || ds[0].ID != second.ID {
		t.Fatalf("Deployments limit 1 = %+v, %v; want only the newest (%d)", ds, err, second.ID)
	}

	missing := second
	missing.ID = second.ID + other.ID + 1000
	mustNotFound(t, "UpdateDeployment of an unknown ID", s.UpdateDeployment(ctx, missing))
}

func assertDeployment(t *testing.T, got, want core.Deployment) {
	t.Helper()
	if !got.StartedAt.Equal(want.StartedAt) || !got.FinishedAt.Equal(want.FinishedAt) || !got.ExposedAt.Equal(want.ExposedAt) {
		t.Errorf("deployment %d times = %v..%v exposed %v, want %v..%v exposed %v", want.ID, got.StartedAt, got.FinishedAt, got.ExposedAt, want.StartedAt, want.FinishedAt, want.ExposedAt)
	}
	got.StartedAt, got.FinishedAt, want.StartedAt, want.FinishedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	got.ExposedAt, want.ExposedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("deployment = %+v\nwant         %+v", got, want)
	}
}

func testAuditChain(t *testing.T, s core.Store) {
	ctx := ctxFor(t)
	inputs := []core.AuditEntry{
		{At: base, Actor: alice, Action: "promote", Ref: api, From: "v1.42.0", To: "v1.43.0",
			Gates: []core.GateResult{
				{Gate: "pipeline", Status: core.GatePass, Reason: "green"},
				{Gate: "backups", Status: core.GateFail, Reason: "db backup 26h old", Overridden: true},
			},
			Overrides: []string{"backups"}, Reason: "hotfix for checkout", Outcome: "ok", Duration: 1500 * time.Millisecond},
		// A zero time is filled in by the store.
		{Actor: robot, Action: "pause", Ref: api, Outcome: "ok"},
		{At: base.Add(minute), Actor: bob, Action: "rollback", Ref: api, From: "v1.43.0", To: "v1.42.0", Outcome: "ok"},
		{At: base.Add(2 * minute), Actor: bob, Action: "lock.force", Ref: apiStg, Reason: "alice left", Outcome: "ok"},
		{At: base.Add(3 * minute), Actor: alice, Action: "promote", Ref: apiStg, Outcome: "failed: provider timeout"},
	}
	var appended []core.AuditEntry
	for i, in := range inputs {
		e, err := s.AppendAudit(ctx, in)
		if err != nil {
			t.Fatalf("AppendAudit %d: %v", i, err)
		}
		if e.Seq != int64(i+1) {
			t.Fatalf("entry %d got Seq %d, want %d", i, e.Seq, i+1)
		}
		if e.At.IsZero() {
			t.Fatalf("entry %d: the store left At zero", i)
		}
		if e.Hash != core.HashAudit(e) {
			t.Fatalf("entry %d: returned Hash does not match its content", i)
		}
		appended = append(appended, e)
	}
	if appended[0].PrevHash != core.GenesisHash {
		t.Fatalf("first entry's PrevHash = %q, want the genesis hash", appended[0].PrevHash)
	}

	all, err := s.Audit(ctx, 0, noLimit)
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	if len(all) != len(inputs) {
		t.Fatalf("Audit returned %d entries, want %d", len(all), len(inputs))
	}
	last, err := core.VerifyAudit(core.GenesisHash, all)
	if err != nil {
		t.Fatalf("the stored chain does not verify: %v", err)
	}
	if last != appended[len(appended)-1].Hash {
		t.Fatalf("chain ends at %s, want the last appended hash %s", last, appended[len(appended)-1].Hash)
	}
	for i := range all {
		if all[i].Hash != appended[i].Hash {
			t.Fatalf("entry %d read back with hash %s, appended with %s", i+1, all[i].Hash, appended[i].Hash)
		}
	}
	if !reflect.DeepEqual(all[0].Gates, inputs[0].Gates) || !reflect.DeepEqual(all[0].Overrides, inputs[0].Overrides) ||
		all[0].Actor != alice || all[0].Duration != inputs[0].Duration {
		t.Fatalf("entry 1 lost detail: %+v", all[0])
	}

	// A page in the middle verifies from the hash of the entry before it.
	page, err := s.Audit(ctx, 2, 2)
	if err != nil {
		t.Fatalf("Audit(2, 2): %v", err)
	}
	if len(page) != 2 || page[0].Seq != 3 || page[1].Seq != 4 {
		t.Fatalf("Audit(2, 2) returned seqs %v, want [3 4]", seqs(page))
	}
	if _, err := core.VerifyAudit(all[1].Hash, page); err != nil {
		t.Fatalf("page 3..4 does not verify from entry 2's hash: %v", err)
	}
	if rest, err := s.Audit(ctx, 5, noLimit); err != nil || len(rest) != 0 {
		t.Fatalf("Audit after the last entry = %v, %v; want nothing", seqs(rest), err)
	}
}

func seqs(es []core.AuditEntry) []int64 {
	var out []int64
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

// mutatingWords are what a method that edits or removes audit entries
// would be called.
var mutatingWords = []string{"Update", "Delete", "Remove", "Edit", "Set", "Prune", "Truncate", "Rewrite", "Replace"}

func testAuditHasNoMutation(t *testing.T, s core.Store) {
	check := func(typ reflect.Type) {
		t.Helper()
		var auditMethods []string
		for i := 0; i < typ.NumMethod(); i++ {
			name := typ.Method(i).Name
			if !strings.Contains(name, "Audit") {
				continue
			}
			auditMethods = append(auditMethods, name)
			for _, w := range mutatingWords {
				if strings.Contains(name, w) {
					t.Errorf("%s has method %s: the audit log must be append-only", typ, name)
				}
			}
		}
		if len(auditMethods) == 0 {
			t.Errorf("%s has no audit methods at all; the check found nothing to check", typ)
		}
	}
	check(reflect.TypeFor[core.Store]())
	// The implementation must not offer a side door either.
	check(reflect.TypeOf(s))
}

func testLockContention(t *testing.T, s core.Store) {
	ctx := ctxFor(t)
	holders := []core.Actor{alice, bob}
	type result struct {
		lock core.Lock
		err  error
	}
	results := make([]result, len(holders))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, h := range holders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			l, _, err := s.AcquireLock(ctx, core.Lock{Ref: api, Holder: h, Reason: "promote v1.43.0 by " + h.Name,
				ExpiresAt: time.Now().Add(time.Hour)})
			results[i] = result{l, err}
		}()
	}
	close(start)
	wg.Wait()

	winner, loser := -1, -1
	for i, r := range results {
		if r.err == nil {
			if winner != -1 {
				t.Fatalf("both holders acquired the lock: %+v and %+v", results[winner].lock, r.lock)
			}
			winner = i
		} else {
			loser = i
		}
	}
	if winner == -1 {
		t.Fatalf("neither holder acquired the lock: %v / %v", results[0].err, results[1].err)
	}
	won := results[winner].lock
	if won.Token == "" {
		t.Fatalf("the winner's lock has no token")
	}
	var held *core.LockHeldError
	if !errors.As(results[loser].err, &held) {
		t.Fatalf("the loser got %v, want *core.LockHeldError", results[loser].err)
	}
	if held.Lock.Holder != holders[winner] || held.Lock.Reason != won.Reason {
		t.Fatalf("LockHeldError names %+v (%q), want the winner %+v (%q)", held.Lock.Holder, held.Lock.Reason, holders[winner], won.Reason)
	}
	if held.Lock.Token != "" {
		t.Fatalf("LockHeldError hands the loser the winner's token")
	}
	if !strings.Contains(held.Error(), holders[winner].Name) {
		t.Fatalf("LockHeldError message %q does not name the holder", held.Error())
	}

	locks, err := s.Locks(ctx)
	if err != nil {
		t.Fatalf("Locks: %v", err)
	}
	if len(locks) != 1 || locks[0].Holder != holders[winner] || locks[0].Token != won.Token || locks[0].Ref != api {
		t.Fatalf("Locks = %+v, want only the winner's lock on %s", locks, api)
	}
}

func testLockTakeover(t *testing.T, s core.Store) {
	ctx := ctxFor(t)
	a, _, err := s.AcquireLock(ctx, core.Lock{Ref: api, Holder: alice, Reason: "promote", Since: base, ExpiresAt: base.Add(minute)})
	if err != nil {
		t.Fatalf("alice acquires: %v", err)
	}
	if !a.Since.Equal(base) || !a.ExpiresAt.Equal(base.Add(minute)) {
		t.Fatalf("alice's lock = %v..%v, want %v..%v", a.Since, a.ExpiresAt, base, base.Add(minute))
	}

	// Before the expiry bob is refused.
	_, _, err = s.AcquireLock(ctx, core.Lock{Ref: api, Holder: bob, Since: base.Add(30 * time.Second), ExpiresAt: base.Add(2 * minute)})
	var held *core.LockHeldError
	if !errors.As(err, &held) || held.Lock.Holder != alice {
		t.Fatalf("bob before expiry: got %v, want *core.LockHeldError naming alice", err)
	}

	// At the expiry alice stopped heartbeating: bob takes over.
	b, expired, err := s.AcquireLock(ctx, core.Lock{Ref: api, Holder: bob, Reason: "rollback", Since: base.Add(minute), ExpiresAt: base.Add(3 * minute)})
	if err != nil {
		t.Fatalf("bob takes over the expired lock: %v", err)
	}
	if len(expired) != 1 || expired[0].Holder != alice || expired[0].Token != a.Token {
		t.Fatalf("takeover reported expired locks %+v, want alice's (for the audit log)", expired)
	}
	if b.Token == a.Token {
		t.Fatalf("bob's takeover reused alice's token")
	}
	if err := s.Heartbeat(ctx, api, a.Token, base.Add(5*minute)); !errors.Is(err, core.ErrLockLost) {
		t.Fatalf("alice's heartbeat after takeover: got %v, want core.ErrLockLost", err)
	}
	if err := s.ReleaseLock(ctx, api, a.Token); !errors.Is(err, core.ErrLockLost) {
		t.Fatalf("alice's release after takeover: got %v, want core.ErrLockLost", err)
	}
	locks, err := s.Locks(ctx)
	if err != nil || len(locks) != 1 || locks[0].Holder != bob {
		t.Fatalf("Locks after alice's failed heartbeat = %+v, %v; want bob still holding", locks, err)
	}

	// Bob's heartbeat keeps the lock his past its first expiry.
	if err := s.Heartbeat(ctx, api, b.Token, base.Add(10*minute)); err != nil {
		t.Fatalf("bob's heartbeat: %v", err)
	}
	_, _, err = s.AcquireLock(ctx, core.Lock{Ref: api, Holder: alice, Since: base.Add(5 * minute), ExpiresAt: base.Add(6 * minute)})
	if !errors.As(err, &held) || held.Lock.Holder != bob {
		t.Fatalf("alice after bob's heartbeat: got %v, want *core.LockHeldError naming bob", err)
	}
}

func testLockReacquireAndRelease(t *testing.T, s core.Store) {
	ctx := ctxFor(t)
	a, _, err := s.AcquireLock(ctx, core.Lock{Ref: api, Holder: alice, Reason: "promote", Since: base, ExpiresAt: base.Add(minute)})
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	other, _, err := s.AcquireLock(ctx, core.Lock{Ref: apiStg, Holder: bob, Since: base, ExpiresAt: base.Add(minute)})
	if err != nil {
		t.Fatalf("a lock on another environment is independent: %v", err)
	}
	if other.Token == a.Token {
		t.Fatalf("two locks got the same token %q", a.Token)
	}

	// The holder re-acquiring with its token succeeds and keeps Since.
	again, _, err := s.AcquireLock(ctx, core.Lock{Ref: api, Holder: alice, Reason: "promote, step 2", Token: a.Token,
		Since: base.Add(30 * time.Second), ExpiresAt: base.Add(2 * minute)})
	if err != nil {
		t.Fatalf("re-acquire with own token: %v", err)
	}
	if again.Token != a.Token || !again.Since.Equal(base) || !again.ExpiresAt.Equal(base.Add(2*minute)) {
		t.Fatalf("re-acquired lock = %+v; want same token, Since %v, expiry %v", again, base, base.Add(2*minute))
	}

	if err := s.ReleaseLock(ctx, api, a.Token); err != nil {
		t.Fatalf("release: %v", err)
	}
	if err := s.ReleaseLock(ctx, api, a.Token); !errors.Is(err, core.ErrLockLost) {
		t.Fatalf("second release: got %v, want core.ErrLockLost", err)
	}
	if err := s.Heartbeat(ctx, api, a.Token, base.Add(time.Hour)); !errors.Is(err, core.ErrLockLost) {
		t.Fatalf("heartbeat after release: got %v, want core.ErrLockLost", err)
	}
	locks, err := s.Locks(ctx)
	if err != nil || len(locks) != 1 || locks[0].Ref != apiStg {
		t.Fatalf("Locks after release = %+v, %v; want only %s", locks, err, apiStg)
	}
	// Free again: anyone may take it.
	if _, _, err := s.AcquireLock(ctx, core.Lock{Ref: api, Holder: bob, Since: base.Add(40 * time.Second), ExpiresAt: base.Add(minute)}); err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
}

func testForceLock(t *testing.T, s core.Store) {
	ctx := ctxFor(t)
	prev, err := s.ForceLock(ctx, core.Lock{Ref: apiStg, Holder: bob, Since: base, ExpiresAt: base.Add(minute)})
	if err != nil || prev != nil {
		t.Fatalf("ForceLock on a free lock = %+v, %v; want nil, nil", prev, err)
	}

	a, _, err := s.AcquireLock(ctx, core.Lock{Ref: api, Holder: alice, Reason: "promote", Since: base, ExpiresAt: base.Add(time.Hour)})
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	prev, err = s.ForceLock(ctx, core.Lock{Ref: api, Holder: bob, Reason: "alice is on holiday", Since: base.Add(minute), ExpiresAt: base.Add(2 * minute)})
	if err != nil {
		t.Fatalf("ForceLock over a live lock: %v", err)
	}
	if prev == nil || prev.Holder != alice || prev.Reason != "promote" || prev.Token != a.Token || !prev.Since.Equal(base) {
		t.Fatalf("ForceLock returned previous %+v, want alice's lock", prev)
	}
	if err := s.Heartbeat(ctx, api, a.Token, base.Add(2*time.Hour)); !errors.Is(err, core.ErrLockLost) {
		t.Fatalf("alice's heartbeat after force: got %v, want core.ErrLockLost", err)
	}
	locks, err := s.Locks(ctx)
	if err != nil {
		t.Fatalf("Locks: %v", err)
	}
	var found bool
	for _, l := range locks {
		if l.Ref == api {
			found = true
			if l.Holder != bob || l.Reason != "alice is on holiday" || l.Token == "" || l.Token == a.Token {
				t.Fatalf("lock after force = %+v, want bob's with a new token", l)
			}
		}
	}
	if !found {
		t.Fatalf("Locks after force has no lock on %s: %+v", api, locks)
	}
}

func testJournal(t *testing.T, s core.Store) {
	ctx := ctxFor(t)
	ops := []core.Operation{
		{ID: "op-1", Ref: api, Kind: "rollback", From: "v1.43.0", To: "v1.42.0", Actor: alice, State: core.OpIntent,
			StartedAt: base, UpdatedAt: base},
		{ID: "op-2", Ref: apiStg, Kind: "promote", From: "v1.42.0", To: "v1.43.0", Actor: robot, State: core.OpRunning,
			ExternalRef: "deploy/8812", StartedAt: base.Add(minute), UpdatedAt: base.Add(minute)},
		{ID: "op-3", Ref: api, Kind: "promote", Actor: bob, State: core.OpSucceeded, StartedAt: base.Add(-time.Hour), UpdatedAt: base},
		{ID: "op-4", Ref: api, Kind: "abort", Actor: bob, State: core.OpFailed, StartedAt: base.Add(-time.Hour), UpdatedAt: base},
		{ID: "op-5", Ref: api, Kind: "promote", Actor: bob, State: core.OpAttention, StartedAt: base.Add(2 * minute), UpdatedAt: base.Add(2 * minute)},
	}
	for _, op := range ops {
		if err := s.Journal(ctx, op); err != nil {
			t.Fatalf("Journal %s: %v", op.ID, err)
		}
	}
	got, err := s.Operation(ctx, "op-2")
	if err != nil {
		t.Fatalf("Operation: %v", err)
	}
	assertOperation(t, got, ops[1])
	_, err = s.Operation(ctx, "op-404")
	mustNotFound(t, "Operation of an unknown ID", err)

	unfinished, err := s.Unfinished(ctx)
	if err != nil {
		t.Fatalf("Unfinished: %v", err)
	}
	if got, want := opIDs(unfinished), "op-1 op-2 op-5"; got != want {
		t.Fatalf("Unfinished = %s, want %s (intent, running and needs-attention, oldest first)", got, want)
	}

	// The rollback's provider call returns: the operation finishes.
	done := ops[0]
	done.State, done.Message, done.UpdatedAt = core.OpSucceeded, "v1.42.0 healthy", base.Add(3*minute)
	if err := s.Journal(ctx, done); err != nil {
		t.Fatalf("Journal update: %v", err)
	}
	got, err = s.Operation(ctx, "op-1")
	if err != nil {
		t.Fatalf("Operation after update: %v", err)
	}
	assertOperation(t, got, done)
	unfinished, err = s.Unfinished(ctx)
	if err != nil {
		t.Fatalf("Unfinished after update: %v", err)
	}
	if got, want := opIDs(unfinished), "op-2 op-5"; got != want {
		t.Fatalf("Unfinished after op-1 succeeded = %s, want %s", got, want)
	}
}

func assertOperation(t *testing.T, got, want core.Operation) {
	t.Helper()
	if !got.StartedAt.Equal(want.StartedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("operation %s times = %v/%v, want %v/%v", want.ID, got.StartedAt, got.UpdatedAt, want.StartedAt, want.UpdatedAt)
	}
	got.StartedAt, got.UpdatedAt, want.StartedAt, want.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("operation = %+v\nwant        %+v", got, want)
	}
}

func opIDs(ops []core.Operation) string {
	var ids []string
	for _, op := range ops {
		ids = append(ids, op.ID)
	}
	return strings.Join(ids, " ")
}

// Watchers: a refresh keeps when the console started, a console not seen
// lately is left out, and one that says goodbye is gone.
func testWatchers(t *testing.T, s core.Store) {
	ctx := context.Background()
	base := time.Date(2026, 11, 25, 21, 0, 0, 0, time.UTC)
	ana := core.Watcher{ID: "w-ana", Actor: core.Actor{Name: "ana", Host: "bastion-1"}, Since: base, SeenAt: base}
	bo := core.Watcher{ID: "w-bo", Actor: core.Actor{Name: "bo", Host: "laptop"}, Since: base.Add(time.Minute), SeenAt: base.Add(time.Minute)}
	for _, w := range []core.Watcher{ana, bo} {
		if err := s.PutWatcher(ctx, w); err != nil {
			t.Fatalf("PutWatcher(%s): %v", w.ID, err)
		}
	}
	// ana's console refreshes ten minutes later; bo's went quiet.
	refresh := ana
	refresh.Since, refresh.SeenAt = base.Add(10*time.Minute), base.Add(10*time.Minute)
	if err := s.PutWatcher(ctx, refresh); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	got, err := s.Watchers(ctx, base.Add(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "w-ana" || got[0].Actor != ana.Actor || !got[0].Since.Equal(base) || !got[0].SeenAt.Equal(base.Add(10*time.Minute)) {
		t.Fatalf("watchers seen lately = %+v; want ana's, watching since %s, seen at %s", got, base, base.Add(10*time.Minute))
	}
	if got, err := s.Watchers(ctx, time.Time{}); err != nil || len(got) != 2 || got[0].ID != "w-ana" || got[1].ID != "w-bo" {
		t.Fatalf("all watchers = %+v, %v; want ana then bo", got, err)
	}
	if err := s.DropWatcher(ctx, "w-ana"); err != nil {
		t.Fatal(err)
	}
	if err := s.DropWatcher(ctx, "w-nobody"); err != nil {
		t.Fatalf("dropping an unknown watcher: %v", err)
	}
	if got, err := s.Watchers(ctx, time.Time{}); err != nil || len(got) != 1 || got[0].ID != "w-bo" {
		t.Fatalf("after ana left = %+v, %v; want bo only", got, err)
	}
}

// Shared facts: the newest under each key wins, and a reader asking for
// what came after its last read gets only that.
func testShared(t *testing.T, s core.Store) {
	ctx := context.Background()
	base := time.Date(2026, 11, 25, 21, 0, 0, 0, time.UTC)
	put := func(at time.Time, kv ...string) {
		t.Helper()
		var facts []core.SharedFact
		for i := 0; i < len(kv); i += 2 {
			facts = append(facts, core.SharedFact{Key: kv[i], Event: []byte(kv[i+1]), At: at})
		}
		if err := s.PutShared(ctx, facts); err != nil {
			t.Fatalf("PutShared: %v", err)
		}
	}
	put(base, "verdict/api/production", `{"kind":"verdict","n":1}`, "backup/api/production/orders", `{"kind":"backup"}`)
	put(base.Add(time.Second), "verdict/api/production", `{"kind":"verdict","n":2}`)
	all, err := s.Shared(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Key != "backup/api/production/orders" || all[1].Key != "verdict/api/production" ||
		string(all[1].Event) != `{"kind":"verdict","n":2}` || !all[1].At.Equal(base.Add(time.Second)) {
		t.Fatalf("shared = %+v; want the backup, then the newest verdict", all)
	}
	later, err := s.Shared(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	if len(later) != 1 || later[0].Key != "verdict/api/production" {
		t.Fatalf("shared after %s = %+v; want only the verdict written since", base, later)
	}
}

func testErrorCounts(t *testing.T, s core.Store) {
	ctx := ctxFor(t)
	b0 := base.Truncate(10 * time.Second)
	b1 := b0.Add(10 * time.Second)
	b2 := b0.Add(20 * time.Second)
	count := func(ref core.Ref, release string, bucket time.Time, n int64) core.ErrorCount {
		return core.ErrorCount{Project: "shop", Ref: ref, Release: release, Level: "error",
			Fingerprint: "f00d", Title: "KeyError: 'sku'", Bucket: bucket, Count: n}
	}
	if err := s.PutErrorCounts(ctx, []core.ErrorCount{
		count(api, "v1.43.0", b0, 4),
		count(api, "v1.43.0", b1, 2),
		count(api, "v1.42.0", b1, 1),
		count(apiStg, "v1.43.0", b1, 7),
	}); err != nil {
		t.Fatalf("PutErrorCounts: %v", err)
	}
	// A second flush of the same bucket adds to it.
	if err := s.PutErrorCounts(ctx, []core.ErrorCount{count(api, "v1.43.0", b1, 3), count(api, "v1.43.0", b2, 1)}); err != nil {
		t.Fatalf("PutErrorCounts again: %v", err)
	}

	got, err := s.ErrorCounts(ctx, api, b1)
	if err != nil {
		t.Fatalf("ErrorCounts: %v", err)
	}
	want := map[string]int64{
		fmt.Sprintf("v1.43.0@%d", b1.Unix()): 5,
		fmt.Sprintf("v1.42.0@%d", b1.Unix()): 1,
		fmt.Sprintf("v1.43.0@%d", b2.Unix()): 1,
	}
	if len(got) != len(want) {
		t.Fatalf("ErrorCounts(%s, since b1) returned %d buckets %+v, want %d", api, len(got), got, len(want))
	}
	for _, c := range got {
		key := fmt.Sprintf("%s@%d", c.Release, c.Bucket.Unix())
		n, ok := want[key]
		if !ok || c.Count != n {
			t.Errorf("bucket %s = %d, want %d (present: %v)", key, c.Count, n, ok)
		}
		if c.Ref != api || c.Project != "shop" || c.Level != "error" || c.Fingerprint != "f00d" || c.Title != "KeyError: 'sku'" {
			t.Errorf("bucket %s lost its key: %+v", key, c)
		}
	}

	if err := s.PruneErrorCounts(ctx, b1); err != nil {
		t.Fatalf("PruneErrorCounts: %v", err)
	}
	got, err = s.ErrorCounts(ctx, api, time.Time{})
	if err != nil {
		t.Fatalf("ErrorCounts after prune: %v", err)
	}
	for _, c := range got {
		if c.Bucket.Before(b1) {
			t.Errorf("bucket %v survived pruning before %v", c.Bucket, b1)
		}
	}
	if len(got) != 3 {
		t.Errorf("after pruning before b1, %s has %d buckets, want 3", api, len(got))
	}
	stg, err := s.ErrorCounts(ctx, apiStg, time.Time{})
	if err != nil || len(stg) != 1 || stg[0].Count != 7 {
		t.Errorf("staging's counts = %+v, %v; want one bucket of 7", stg, err)
	}
}

func testConcurrentAudit(t *testing.T, s core.Store) {
	ctx := ctxFor(t)
	const writers, each = 8, 50
	errs := make(chan error, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range each {
				_, err := s.AppendAudit(ctx, core.AuditEntry{Actor: core.Actor{Name: fmt.Sprintf("writer-%d", w)},
					Action: "heartbeat", Ref: api, Reason: fmt.Sprintf("%d/%d", w, i), Outcome: "ok"})
				if err != nil {
					errs <- fmt.Errorf("writer %d entry %d: %w", w, i, err)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all, err := s.Audit(ctx, 0, noLimit)
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	if len(all) != writers*each {
		t.Fatalf("Audit holds %d entries, want %d", len(all), writers*each)
	}
	if _, err := core.VerifyAudit(core.GenesisHash, all); err != nil {
		t.Fatalf("chain after concurrent appends: %v", err)
	}
	seen := map[string]bool{}
	for _, e := range all {
		if seen[e.Reason] {
			t.Fatalf("entry %q stored twice", e.Reason)
		}
		seen[e.Reason] = true
	}
}

// A person's lock and an operation's lock live side by side: the person's
// own commands run under it, everyone else's meet it, and it never expires
// unless the person gave a TTL.
func testPersonLock(t *testing.T, s core.Store) {
	ctx := ctxFor(t)
	mine, _, err := s.AcquireLock(ctx, core.Lock{Ref: api, Kind: core.LockPerson, Holder: alice, Reason: "db migration", Since: base})
	if err != nil {
		t.Fatalf("alice locks: %v", err)
	}
	if !mine.ExpiresAt.IsZero() {
		t.Fatalf("a person's lock without a TTL got an expiry: %v", mine.ExpiresAt)
	}
	op, _, err := s.AcquireLock(ctx, core.Lock{Ref: api, Holder: alice, Reason: "rollback", Since: base.Add(time.Hour), ExpiresAt: base.Add(time.Hour + minute)})
	if err != nil {
		t.Fatalf("alice's own rollback under her lock: %v", err)
	}
	var held *core.LockHeldError
	if _, _, err := s.AcquireLock(ctx, core.Lock{Ref: api, Holder: alice, Reason: "promote", Since: base.Add(time.Hour), ExpiresAt: base.Add(time.Hour + minute)}); !errors.As(err, &held) || held.Lock.Reason != "rollback" {
		t.Fatalf("a second operation of alice's beside her running rollback = %v; want refused naming the rollback", err)
	}
	if _, _, err := s.AcquireLock(ctx, core.Lock{Ref: api, Holder: bob, Reason: "promote", Since: base.Add(48 * time.Hour), ExpiresAt: base.Add(49 * time.Hour)}); !errors.As(err, &held) || held.Lock.Holder != alice || held.Lock.Kind != core.LockPerson {
		t.Fatalf("bob's promote two days later = %v; want refused by alice's lock, which does not expire", err)
	}
	if _, _, err := s.AcquireLock(ctx, core.Lock{Ref: api, Kind: core.LockPerson, Holder: bob, Since: base.Add(48 * time.Hour)}); !errors.As(err, &held) {
		t.Fatalf("bob's lock = %v; want refused", err)
	}
	if err := s.ReleaseLock(ctx, api, op.Token); err != nil {
		t.Fatal(err)
	}
	locks, err := s.Locks(ctx)
	if err != nil || len(locks) != 1 || locks[0].Token != mine.Token || locks[0].Kind != core.LockPerson {
		t.Fatalf("Locks after the rollback ended = %+v, %v; want alice's own lock", locks, err)
	}
}

func testExpireLocks(t *testing.T, s core.Store) {
	ctx := ctxFor(t)
	ttl, _, err := s.AcquireLock(ctx, core.Lock{Ref: api, Kind: core.LockPerson, Holder: alice, Since: base, ExpiresAt: base.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AcquireLock(ctx, core.Lock{Ref: apiStg, Kind: core.LockPerson, Holder: bob, Since: base}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ExpireLocks(ctx, base.Add(minute)); err != nil || len(got) != 0 {
		t.Fatalf("ExpireLocks before any expiry = %+v, %v", got, err)
	}
	got, err := s.ExpireLocks(ctx, base.Add(time.Hour))
	if err != nil || len(got) != 1 || got[0].Token != ttl.Token {
		t.Fatalf("ExpireLocks at alice's TTL = %+v, %v; want alice's lock only", got, err)
	}
	locks, err := s.Locks(ctx)
	if err != nil || len(locks) != 1 || locks[0].Holder != bob {
		t.Fatalf("Locks after expiry = %+v, %v; want bob's lock, which has no TTL", locks, err)
	}
}
