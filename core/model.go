// Package core is Ripcord's domain and engine: releases, deployments,
// pipelines, error verdicts, backup freshness, gates, locks and the audit
// log, and the Engine hub every client (terminal, SSH, CLI) talks to.
//
// core knows nothing of screens or of gRPC: the terminal UI and the plugin
// host depend on core, never the other way round.
package core

import (
	"fmt"
	"math"
	"time"

	"github.com/ripcordhq/ripcord/core/procid"
)

// Ref names one environment of one service, the unit that rollouts, locks
// and deployments are kept per.
type Ref struct {
	Service string `json:"service"`
	Env     string `json:"env"`
}

func (r Ref) String() string { return r.Service + "/" + r.Env }

// MigrationKind says whether a schema migration can be left in place when
// the release that carried it is rolled back.
type MigrationKind string

const (
	// MigrationExpand only adds (tables, nullable columns, indexes): the
	// previous release keeps working on the new schema, so rollback is free.
	MigrationExpand MigrationKind = "expand"
	// MigrationContract removes or rewrites: rolling back across it can lose
	// rows written by the new schema, and it needs a fresh backup first.
	MigrationContract MigrationKind = "contract"
)

// Migration is one schema migration file as it stands at a release's
// commit, classified by what it does to the schema.
type Migration struct {
	ID   string        `json:"id"`
	Kind MigrationKind `json:"kind"`
	// File is the migration's path in the repository; Layout the tool whose
	// naming it follows (golang-migrate, goose, flyway, dbmate, plain).
	File   string `json:"file,omitempty"`
	Layout string `json:"layout,omitempty"`
	// Reason says in a sentence why it is Kind: the statement that made it
	// a contract, the annotation a person wrote, or the parser's error.
	Reason string `json:"reason,omitempty"`
	// Changes are its statements' effects, in file order.
	Changes []SchemaChange `json:"changes,omitempty"`
}

// SchemaChange is what one statement of a migration does.
type SchemaChange struct {
	Kind MigrationKind `json:"kind"`
	// Action is what a person reads: "add column", "drop table",
	// "set not null", "delete rows".
	Action string `json:"action"`
	Table  string `json:"table,omitempty"`
	Column string `json:"column,omitempty"`
	Line   int    `json:"line,omitempty"`
}

// Release is one build of a service: built once, deployed everywhere, so
// the artifact digest is its identity across environments.
type Release struct {
	Service        string    `json:"service"`
	Version        string    `json:"version"`
	Commit         string    `json:"commit,omitempty"`
	Branch         string    `json:"branch,omitempty"`
	ArtifactDigest string    `json:"artifact_digest,omitempty"`
	BuiltAt        time.Time `json:"built_at,omitzero"`
	// Migrations are every migration in the service's migrations dir at
	// Commit, in the order they apply; MigrationsUnknown says why they
	// could not be read (the gates then cannot tell, and say so).
	Migrations        []Migration `json:"migrations,omitempty"`
	MigrationsUnknown string      `json:"migrations_unknown,omitempty"`
	// Held is set when the release was rolled back: automation must not
	// promote it again until a person clears the hold.
	Held       bool   `json:"held,omitempty"`
	HeldReason string `json:"held_reason,omitempty"`
}

// HasContract reports whether any of the release's migrations is a
// contract.
func (r Release) HasContract() bool {
	for _, m := range r.Migrations {
		if m.Kind == MigrationContract {
			return true
		}
	}
	return false
}

// DeployState is where one deployment of a release into an environment is.
type DeployState string

const (
	DeployPending     DeployState = "pending"
	DeployProgressing DeployState = "progressing"
	DeployPaused      DeployState = "paused"
	DeployJudgment    DeployState = "waiting-for-judgment"
	DeployDegraded    DeployState = "degraded"
	DeployHealthy     DeployState = "healthy"
	DeployAborted     DeployState = "aborted"
	DeployRolledBack  DeployState = "rolled-back"
	DeployFailed      DeployState = "failed"
	DeploySuperseded  DeployState = "superseded"
)

// Terminal reports whether no further transition happens on its own.
func (s DeployState) Terminal() bool {
	switch s {
	case DeployHealthy, DeployAborted, DeployRolledBack, DeployFailed, DeploySuperseded:
		return true
	}
	return false
}

// Deployment is a release running (or having run) in an environment.
// StepKind is what a rollout step does.
type StepKind string

const (
	StepWeight   StepKind = "weight"   // send Weight% of traffic to the candidate
	StepAnalysis StepKind = "analysis" // watch the error verdict for For
	StepPause    StepKind = "pause"    // wait For, or until a person promotes when For is 0
)

// RolloutStep is one step of an environment's rollout, as configured.
type RolloutStep struct {
	Kind   StepKind      `json:"kind"`
	Weight int           `json:"weight,omitempty"`
	For    time.Duration `json:"for,omitempty"`
}

func (s RolloutStep) String() string {
	switch s.Kind {
	case StepWeight:
		return fmt.Sprintf("weight %d%%", s.Weight)
	case StepAnalysis:
		return "analysis " + s.For.String()
	case StepPause:
		if s.For == 0 {
			return "pause for judgment"
		}
		return "pause " + s.For.String()
	}
	return string(s.Kind)
}

// RolloutPlan is one service's rollout steps in one environment,
// published so a screen can show where a rollout is and what comes next.
type RolloutPlan struct {
	Ref   Ref           `json:"ref"`
	Steps []RolloutStep `json:"steps"`
}

type Deployment struct {
	ID      int64       `json:"id"`
	Ref     Ref         `json:"ref"`
	Version string      `json:"version"`
	From    string      `json:"from,omitempty"` // the stable version it replaces
	State   DeployState `json:"state"`
	// Weight is the candidate's share of traffic, 0..100.
	Weight int `json:"weight"`
	Step   int `json:"step"` // index into the environment's rollout steps
	// StepStartedAt is when the current step began (timers on screen).
	StepStartedAt time.Time `json:"step_started_at,omitzero"`
	StartedAt     time.Time `json:"started_at,omitzero"`
	// ExposedAt is when the candidate, deployed and healthy, began taking
	// its share of traffic: the target's Deploy (or SetWeight from 0)
	// completed. Errors before it are never evidence about the candidate.
	ExposedAt  time.Time `json:"exposed_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	Actor      Actor     `json:"actor"`
}

// RunState is the state of a pipeline run, stage or step.
type RunState string

const (
	RunQueued    RunState = "queued"
	RunRunning   RunState = "running"
	RunSucceeded RunState = "succeeded"
	RunFailed    RunState = "failed"
	RunCanceled  RunState = "canceled"
	RunSkipped   RunState = "skipped"
	RunWaiting   RunState = "waiting" // manual step waiting for a person
)

// Terminal reports whether the state is final.
func (s RunState) Terminal() bool {
	switch s {
	case RunSucceeded, RunFailed, RunCanceled, RunSkipped:
		return true
	}
	return false
}

// PipelineRun is one run of a service's pipeline for one release.
type PipelineRun struct {
	ID      string `json:"id"`
	Service string `json:"service"`
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	Branch  string `json:"branch,omitempty"`
	// Migrations are the migrations at Commit (see Release.Migrations).
	Migrations        []Migration `json:"migrations,omitempty"`
	MigrationsUnknown string      `json:"migrations_unknown,omitempty"`
	State             RunState    `json:"state"`
	Stages            []Stage     `json:"stages"`
	ArtifactDigest    string      `json:"artifact_digest,omitempty"`
	StartedAt         time.Time   `json:"started_at,omitzero"`
	FinishedAt        time.Time   `json:"finished_at,omitzero"`
}

// Stage groups steps; a failed step stops its stage.
type Stage struct {
	Name  string   `json:"name"`
	State RunState `json:"state"`
	Steps []Step   `json:"steps"`
}

// Step is one command of a stage.
type Step struct {
	Name       string    `json:"name"`
	State      RunState  `json:"state"`
	ExitCode   int       `json:"exit_code"`
	Progress   float64   `json:"progress,omitempty"` // 0..1 where the source knows it
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// Began is when the run started, which orders runs: the newest run is the
// one that started last, whatever order runs finish or are reported in (a
// slow old run must not count as newer than a quick later one). A run
// that reports no start is placed by its finish.
func (r PipelineRun) Began() time.Time {
	if !r.StartedAt.IsZero() {
		return r.StartedAt
	}
	return r.FinishedAt
}

// Green reports whether every stage succeeded (or was skipped on purpose).
func (r PipelineRun) Green() bool {
	if r.State != RunSucceeded {
		return false
	}
	for _, s := range r.Stages {
		if s.State != RunSucceeded && s.State != RunSkipped {
			return false
		}
	}
	return true
}

// ErrorBucket counts error events of one release in one time bucket.
type ErrorBucket struct {
	Start time.Time `json:"start"`
	Count int64     `json:"count"`
}

// ErrorIssue is a group of error events with one fingerprint.
type ErrorIssue struct {
	Fingerprint string    `json:"fingerprint"`
	Title       string    `json:"title"`
	Count       int64     `json:"count"`
	FirstSeen   time.Time `json:"first_seen,omitzero"`
	// FirstRelease is the release the fingerprint was first seen in.
	FirstRelease string `json:"first_release,omitempty"`
}

// ErrorWindow is what an error source reports for one release in one
// environment over a window. A window with no release, no buckets and
// nothing unavailable is a heartbeat: the source is up and has nothing to
// report. A source that pushes as errors arrive sends one at least every
// bucket while it has none, so the canary's evidence can start the moment
// the candidate takes traffic rather than at the next bucket.
type ErrorWindow struct {
	Ref     Ref           `json:"ref"`
	Release string        `json:"release"`
	Buckets []ErrorBucket `json:"buckets"`
	Issues  []ErrorIssue  `json:"issues,omitempty"`
	// Unavailable is set when the source could not count; the screen then
	// says "counts unavailable", never zero.
	Unavailable string `json:"unavailable,omitempty"`
	// Warning marks a window that is not a release's own errors but
	// errors a person must know were kept apart: events of an
	// environment the source does not count for (Release names it, e.g.
	// `(environment "prod")`), or of releases beyond the source's cap.
	Warning string `json:"warning,omitempty"`
}

// Heartbeat reports whether the window only says the source is up.
func (w ErrorWindow) Heartbeat() bool {
	return w.Release == "" && len(w.Buckets) == 0 && w.Unavailable == "" && w.Warning == ""
}

// Total sums the window's buckets.
func (w ErrorWindow) Total() int64 {
	var n int64
	for _, b := range w.Buckets {
		n += b.Count
	}
	return n
}

// VerdictKind is the outcome of comparing a candidate with its baseline.
type VerdictKind string

const (
	VerdictInconclusive VerdictKind = "inconclusive"
	VerdictHealthy      VerdictKind = "healthy"
	VerdictSpike        VerdictKind = "spike"
)

// SpikeVerdict is the answer to "did the new release make errors worse",
// always with the evidence a person needs to agree or disagree.
type SpikeVerdict struct {
	Ref       Ref         `json:"ref"`
	Candidate string      `json:"candidate"`
	Baseline  string      `json:"baseline"`
	Kind      VerdictKind `json:"kind"`
	Evidence  Evidence    `json:"evidence"`
	At        time.Time   `json:"at"`
}

// Evidence is why a verdict is what it is.
type Evidence struct {
	CandidateCount int64   `json:"candidate_count"`
	BaselineCount  int64   `json:"baseline_count"`
	Share          float64 `json:"share"` // candidate traffic share assumed under no regression
	// RateRatio is the estimated candidate ÷ baseline per-request error
	// rate; RateRatioLow and RateRatioHigh are its always-valid confidence
	// bounds, each at level 1-alpha (1/Threshold) however often looked at.
	RateRatio     float64 `json:"rate_ratio"`
	RateRatioLow  float64 `json:"rate_ratio_low"`
	RateRatioHigh float64 `json:"rate_ratio_high"`
	// PValue is the exact binomial p-value of all errors so far as one
	// fixed sample: descriptive, with no guarantee under repeated looks.
	PValue float64 `json:"p_value"`
	// EvidenceRatio is the sequential test's likelihood ratio; SPIKE is
	// called when it reaches Threshold (1/alpha).
	EvidenceRatio float64 `json:"evidence_ratio"`
	Threshold     float64 `json:"threshold"`
	// Tolerance is the ratio HEALTHY rules out: HEALTHY means
	// RateRatioHigh < Tolerance.
	Tolerance float64 `json:"tolerance,omitempty"`
	// Dispersion is how clustered errors arrive (1: independent); each
	// error counts as 1/Dispersion of one.
	Dispersion float64 `json:"dispersion,omitempty"`
	// Elapsed is the time since the candidate began taking traffic;
	// CalledAfter, for SPIKE, when the threshold was crossed in it.
	Elapsed     time.Duration `json:"elapsed"`
	CalledAfter time.Duration `json:"called_after,omitempty"`
	// NeedsMore, for INCONCLUSIVE, estimates how much longer the canary
	// must run at the current error rate to be HEALTHY (0: unknown, or
	// not at the current ratio).
	NeedsMore time.Duration `json:"needs_more,omitempty"`
	NewIssues []ErrorIssue  `json:"new_issues,omitempty"`
	Note      string        `json:"note,omitempty"`
}

// unbounded is where a ratio stops being a number a person can use: the
// baseline had (next to) no errors.
const unbounded = 1e6

func ratioText(x float64) string {
	if math.IsInf(x, 1) || x > unbounded {
		return "∞"
	}
	return fmt.Sprintf("%.1f", x)
}

// Ratio is the rate ratio as a person reads it: "6.2×", or "∞×" when the
// baseline had no errors at all.
func (e Evidence) Ratio() string { return ratioText(e.RateRatio) + "×" }

// Interval is the ratio's confidence interval: "3.1–12.4", or "≥ 3.1"
// without an upper bound.
func (e Evidence) Interval() string {
	if math.IsInf(e.RateRatioHigh, 1) || e.RateRatioHigh > unbounded {
		return "≥ " + ratioText(e.RateRatioLow)
	}
	return ratioText(e.RateRatioLow) + "–" + ratioText(e.RateRatioHigh)
}

// BackupFacts is what a backup source reports about one backup set. It
// holds facts only; core's freshness policy turns them into a state.
type BackupFacts struct {
	Set        string    `json:"set"`
	Tool       string    `json:"tool"`
	LastStart  time.Time `json:"last_start,omitzero"`
	LastEnd    time.Time `json:"last_end,omitzero"` // zero where the tool has no end time
	LastType   string    `json:"last_type,omitempty"`
	LastSize   int64     `json:"last_size,omitempty"`
	LastFull   time.Time `json:"last_full,omitzero"`
	Attempted  time.Time `json:"attempted,omitzero"`
	AttemptOK  bool      `json:"attempt_ok"`
	Running    bool      `json:"running"`
	VerifiedAt time.Time `json:"verified_at,omitzero"`
	VerifyOK   bool      `json:"verify_ok"`
	// Unreadable says why the source could not be read ("restic: wrong
	// password"); such a set is unknown, never fresh.
	Unreadable string    `json:"unreadable,omitempty"`
	ReportedAt time.Time `json:"reported_at"`
	CanRunNow  bool      `json:"can_run_now,omitempty"`
	// Status is the tool's own word on the set ("ok", "no valid backups",
	// pgBackRest's WAL range); VerifyMessage is the last verify's finding
	// in the tool's words ("repository contains errors").
	Status        string `json:"status,omitempty"`
	VerifyMessage string `json:"verify_message,omitempty"`
}

// FreshnessState is the policy's reading of a backup set.
type FreshnessState string

const (
	FreshOK       FreshnessState = "ok"
	FreshWarn     FreshnessState = "warn"
	FreshCritical FreshnessState = "critical"
	FreshUnknown  FreshnessState = "unknown"
)

// Freshness is a backup set's facts judged against its policy.
type Freshness struct {
	Ref      Ref            `json:"ref"`
	Facts    BackupFacts    `json:"facts"`
	State    FreshnessState `json:"state"`
	Age      time.Duration  `json:"age"`
	Expected time.Duration  `json:"expected"`
	Reason   string         `json:"reason"`
}

// GateStatus is the outcome of one gate.
type GateStatus string

const (
	GatePass    GateStatus = "pass"
	GateFail    GateStatus = "fail"
	GateUnknown GateStatus = "unknown"
)

// GateResult is one gate's answer with a reason a person can act on.
type GateResult struct {
	Gate       string     `json:"gate"`
	Status     GateStatus `json:"status"`
	Reason     string     `json:"reason"`
	Overridden bool       `json:"overridden,omitempty"`
}

// Actor is the person (or automation) behind an action.
type Actor struct {
	Name string `json:"name"`           // OS user or SSH user
	Host string `json:"host,omitempty"` // where the console runs
	// KeyFingerprint is the SSH key's fingerprint when the actor came in
	// over the bastion.
	KeyFingerprint string `json:"key_fingerprint,omitempty"`
	Automation     bool   `json:"automation,omitempty"`
	// Via is the OS account the action came through when it differs from
	// the person named (RIPCORD_ACTOR on a shared deploy account): the
	// account is what the kernel vouches for, the name is what the person
	// said, and both are recorded ("ana via deploy@bastion").
	Via string `json:"via,omitempty"`
}

func (a Actor) String() string {
	s := a.Name
	if a.Automation {
		s = "automation:" + s
	}
	if a.Via != "" {
		s += " via " + a.Via
	}
	if a.Host != "" {
		s += "@" + a.Host
	}
	if a.KeyFingerprint != "" {
		s += " (" + a.KeyFingerprint + ")"
	}
	return s
}

// LockKind says what a lock protects and how it ends.
type LockKind string

const (
	// LockOperation is held by one command while it runs (a promote, a
	// rollback, a CLI command from before its providers start until it
	// exits), in one process: heartbeated by the engine that holds it, it
	// expires a TTL after that process stops beating, and only its token
	// releases it (anyone else needs force, audited).
	LockOperation LockKind = "operation"
	// LockPerson is a person holding an environment (`ripcord lock`):
	// held until that person unlocks it, or until the TTL they gave.
	// Their own commands run under it; everyone else meets it.
	LockPerson LockKind = "person"
)

// Lock serialises operations on one service and environment. An
// environment has at most one lock of each kind.
type Lock struct {
	Ref    Ref       `json:"ref"`
	Kind   LockKind  `json:"kind,omitempty"` // "" reads as LockOperation
	Holder Actor     `json:"holder"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
	// ExpiresAt is the heartbeat expiry of an operation lock, or the TTL
	// a person gave; zero holds the lock until it is released.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Token     string    `json:"token"`
	// Owner is the process that took the lock, so a lock whose process has
	// died can be told from one that is merely quiet.
	Owner procid.ID `json:"owner,omitzero"`
}

// Expired reports whether the lock's time is up: its holder stopped
// heartbeating, or the TTL a person gave has passed.
func (l Lock) Expired(now time.Time) bool {
	return !l.ExpiresAt.IsZero() && !now.Before(l.ExpiresAt)
}

// IsPerson reports whether a person holds the lock for themselves.
func (l Lock) IsPerson() bool { return l.Kind == LockPerson }

// SamePerson reports whether two actors are the same person (or the same
// automation): the name, and the SSH key where one is known. The host is
// not part of it: a person's lock is theirs from any terminal.
func SamePerson(a, b Actor) bool {
	return a.Name == b.Name && a.Automation == b.Automation && a.KeyFingerprint == b.KeyFingerprint
}

// AuditEntry is one line of the append-only, hash-chained audit log.
type AuditEntry struct {
	Seq       int64         `json:"seq"`
	At        time.Time     `json:"at"`
	Actor     Actor         `json:"actor"`
	Action    string        `json:"action"`
	Ref       Ref           `json:"ref"`
	From      string        `json:"from,omitempty"`
	To        string        `json:"to,omitempty"`
	Gates     []GateResult  `json:"gates,omitempty"`
	Overrides []string      `json:"overrides,omitempty"`
	Reason    string        `json:"reason,omitempty"`
	Outcome   string        `json:"outcome"`
	Duration  time.Duration `json:"duration,omitempty"`
	// PrevHash and Hash chain the log: each entry carries the previous
	// entry's hash, so editing any line breaks every hash after it.
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
	// Sig is the audit key's signature of Hash ("KEYID:BASE64"): an entry
	// edited and the chain recomputed after it no longer carries a valid
	// one, since the key is not in the database.
	Sig string `json:"sig,omitempty"`
}

// OpState is where a journaled operation is.
type OpState string

const (
	OpIntent    OpState = "intent"  // journaled, no provider call yet
	OpRunning   OpState = "running" // provider call made
	OpSucceeded OpState = "succeeded"
	OpFailed    OpState = "failed"
	OpAttention OpState = "needs-attention" // found unfinished after a crash
)

// Operation is a journaled intent: written before any provider call so a
// crash never leaves a half-done rollback without an owner.
type Operation struct {
	ID          string    `json:"id"`
	Ref         Ref       `json:"ref"`
	Kind        string    `json:"kind"`
	From        string    `json:"from,omitempty"`
	To          string    `json:"to,omitempty"`
	Actor       Actor     `json:"actor"`
	State       OpState   `json:"state"`
	ExternalRef string    `json:"external_ref,omitempty"`
	Message     string    `json:"message,omitempty"`
	StartedAt   time.Time `json:"started_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}
