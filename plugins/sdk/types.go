package sdk

import "time"

// The SDK's own types: what crosses the wire, and nothing else. A field
// here is sent to the host (or received from it); Ripcord's internal types
// never appear in this API.

// Ref names one service in one environment: the unit a target deploys and
// an error source counts for.
type Ref struct {
	Service string
	Env     string
}

func (r Ref) String() string { return r.Service + "/" + r.Env }

// Actor is the person (or automation) an operation is done for, for the
// provider's own records (an annotation, a commit message).
type Actor struct {
	Name string
	Host string
	// KeyFingerprint is the SSH key the person came in with, if any.
	KeyFingerprint string
	Automation     bool
	// Via is the OS account the action came through when it differs from
	// the person named: "ana via deploy@bastion-1".
	Via string
}

// String names the actor as Ripcord's audit log does: "ana@bastion-1",
// "automation:ripcord", "ana via deploy@bastion-1 (SHA256:…)".
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

// Release is one build of a service, identified across environments by its
// artifact digest.
type Release struct {
	Service        string
	Version        string
	Commit         string
	Branch         string
	ArtifactDigest string
	BuiltAt        time.Time
	// Migrations are the migrations at Commit, in the order they apply;
	// MigrationsUnknown says why they could not be read.
	Migrations        []Migration
	MigrationsUnknown string
}

// Migration is one schema migration; Kind is "expand" (safe to leave in
// place on rollback) or "contract".
type Migration struct {
	ID   string
	Kind string
	// File is its path in the repository; Layout the tool whose naming it
	// follows (golang-migrate, goose, flyway, dbmate, plain).
	File   string
	Layout string
	// Reason says in a sentence why it is Kind.
	Reason string
	// Changes are its statements' effects, in file order.
	Changes []SchemaChange
}

// SchemaChange is what one statement of a migration does.
type SchemaChange struct {
	Kind   string // expand or contract
	Action string // "add column", "drop table"…
	Table  string
	Column string
	Line   int
}

// TargetStatus is what runs in one service's environment.
type TargetStatus struct {
	// Current is the stable release serving traffic.
	Current string
	// Candidate is the release taking Weight% of traffic beside Current
	// during a rollout; empty when none.
	Candidate string
	Weight    int
	// Healthy reports the releases answer their health checks.
	Healthy bool
	// Kept lists the releases still installed, which a rollback can go to
	// without reinstalling.
	Kept []string
	// Problems lists what is wrong in words a person can act on.
	Problems []string
	// Hosts lists each machine of a target that runs releases on several
	// (a fleet of servers), so the screen can say which runs what.
	Hosts []HostStatus
}

// HostStatus is one machine of a target: the release it runs and whether
// it answers. State is ok, working, unhealthy, unreachable or unknown;
// Message says why a host is not ok.
type HostStatus struct {
	Name, Address, Release, State, Message string
}

// RunState is where a pipeline run, stage or step is.
type RunState string

// Run states.
const (
	RunQueued    RunState = "queued"
	RunRunning   RunState = "running"
	RunSucceeded RunState = "succeeded"
	RunFailed    RunState = "failed"
	RunCanceled  RunState = "canceled"
	RunSkipped   RunState = "skipped"
	RunWaiting   RunState = "waiting" // a manual step waiting for a person
)

// PipelineRun is one run of a service's pipeline for one release.
type PipelineRun struct {
	ID      string
	Service string
	Version string
	Commit  string
	Branch  string
	State   RunState
	Stages  []Stage
	// ArtifactDigest ("sha256:…") is the built artifact: the host records
	// a green run's release under it.
	ArtifactDigest string
	// StartedAt orders runs: the host takes the run that started last as
	// the newest, whatever order runs arrive in.
	StartedAt  time.Time
	FinishedAt time.Time
	// Migrations are the migrations at Commit (see Release.Migrations);
	// MigrationsUnknown says why they could not be read.
	Migrations        []Migration
	MigrationsUnknown string
}

// Stage groups steps.
type Stage struct {
	Name  string
	State RunState
	Steps []Step
}

// Step is one command of a stage.
type Step struct {
	Name       string
	State      RunState
	ExitCode   int
	Progress   float64 // 0..1 where known
	StartedAt  time.Time
	FinishedAt time.Time
}

// ErrorWindow is one release's errors in one environment: counts per time
// bucket, newest last, and the issues seen.
type ErrorWindow struct {
	Release string
	Buckets []ErrorBucket
	Issues  []ErrorIssue
	// Unavailable says why the source could not count; the host then
	// shows "counts unavailable", never zero.
	Unavailable string
	// Warning marks a window that is not a release's own errors but
	// errors kept apart a person must know about (another environment's,
	// or releases beyond the source's cap); Release names them. A window
	// with no release, no buckets and nothing else is a heartbeat: the
	// source is up and has nothing to report.
	Warning string
}

// ErrorBucket counts one release's errors in one time bucket.
type ErrorBucket struct {
	Start time.Time
	Count int64
}

// ErrorIssue is a group of errors with one fingerprint.
type ErrorIssue struct {
	Fingerprint  string
	Title        string
	Count        int64
	FirstSeen    time.Time
	FirstRelease string
}

// BackupFacts is what a backup source knows about one set: facts only;
// the host judges freshness against the set's policy.
type BackupFacts struct {
	Set  string
	Tool string
	// LastStart and LastEnd bound the newest good backup; leave LastEnd
	// zero when the tool records no end time.
	LastStart time.Time
	LastEnd   time.Time
	LastType  string
	LastSize  int64
	LastFull  time.Time
	// Attempted and AttemptOK describe the newest attempt, good or not.
	Attempted time.Time
	AttemptOK bool
	Running   bool
	// VerifiedAt, VerifyOK and VerifyMessage describe the newest verify.
	VerifiedAt    time.Time
	VerifyOK      bool
	VerifyMessage string
	// Unreadable says why the set could not be read; the set is then
	// unknown, never fresh.
	Unreadable string
	// ReportedAt is when these facts were read; the host calls a set
	// whose reports stop unknown.
	ReportedAt time.Time
	// CanRunNow says a backup can be started now (BackupRunner).
	CanRunNow bool
	// Status is the tool's own word on the set ("ok", "no valid backups").
	Status string
}
