package core

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Gate names, as written in ripcord.yaml's `gates:` list.
const (
	GatePipeline   = "pipeline"
	GateSoak       = "soak"
	GateErrors     = "errors"
	GateBackups    = "backups"
	GateMigrations = "migrations"
	GateBranch     = "branch"
	GateLock       = "lock"
)

// GateNames lists every gate, in the order the docs give them.
var GateNames = []string{GatePipeline, GateSoak, GateErrors, GateBackups, GateMigrations, GateBranch, GateLock}

// InconclusivePolicy is what the errors gate and an analysis step do with
// an INCONCLUSIVE verdict: not enough evidence yet either way.
type InconclusivePolicy string

const (
	// InconclusiveWait, the default: the gate does not pass (unknown:
	// waiting for evidence) and an analysis step keeps watching past its
	// time until the verdict is HEALTHY or SPIKE, or a person promotes.
	InconclusiveWait InconclusivePolicy = "wait"
	// InconclusivePass lets an inconclusive verdict through the gate and
	// an analysis step.
	InconclusivePass InconclusivePolicy = "pass"
	// InconclusiveFail fails the gate, and an analysis step that ends
	// inconclusive stops the rollout (degraded) for a person; automatic
	// rollback acts on SPIKE only.
	InconclusiveFail InconclusivePolicy = "fail"
)

// InconclusivePolicies lists the policies, as written in ripcord.yaml.
var InconclusivePolicies = []InconclusivePolicy{InconclusiveWait, InconclusivePass, InconclusiveFail}

// GateSpec is one configured gate.
type GateSpec struct {
	Name string
	// Soak is how long the same artifact must have run in the previous
	// environment (the soak gate only).
	Soak time.Duration
}

// Predecessor is what the previous environment says about the candidate.
type Predecessor struct {
	Env string
	// Version and Digest are what runs there now, since Since.
	Version string
	Digest  string
	Since   time.Time
	// Healthy is false while its own rollout is still going or failed.
	Healthy bool
	// Verdict is the candidate's error verdict there, if one was made.
	Verdict *SpikeVerdict
}

// GateInput is everything the gates judge. The engine gathers it; the
// gates themselves are pure so every reason can be tested.
type GateInput struct {
	Ref      Ref
	Release  Release
	Pipeline *PipelineRun // the candidate's run, if found
	Prev     *Predecessor // nil for the first environment
	Verdict  *SpikeVerdict
	// StableVersion is what runs in Ref's environment now (the release the
	// candidate replaces); Stable is its record, nil when the store does
	// not hold it.
	StableVersion string
	Stable        *Release
	Backups       []Freshness
	Branches      []string // allowed; empty means main
	Lock          *Lock
	Actor         Actor
	Now           time.Time
	// OnInconclusive is what the errors gate does with an INCONCLUSIVE
	// verdict (or none where one was due); empty means wait.
	OnInconclusive InconclusivePolicy
	// MigrationsUnread says why nothing reads the service's migrations:
	// a release without any then says "not checked", never "none".
	MigrationsUnread string
}

// EvaluateGates runs each configured gate. A gate named in overrides that
// does not pass is marked Overridden (the engine audits the reason).
func EvaluateGates(specs []GateSpec, in GateInput, overrides []string) []GateResult {
	out := make([]GateResult, 0, len(specs))
	for _, s := range specs {
		var r GateResult
		switch s.Name {
		case GatePipeline:
			r = pipelineGate(in)
		case GateSoak:
			r = soakGate(in, s.Soak)
		case GateErrors:
			r = errorsGate(in)
		case GateBackups:
			r = BackupGate(in.Backups, false, time.Time{})
		case GateMigrations:
			r = migrationsGate(in)
		case GateBranch:
			r = branchGate(in)
		case GateLock:
			r = lockGate(in)
		default:
			r = GateResult{Status: GateUnknown, Reason: "unknown gate"}
		}
		r.Gate = s.Name
		if r.Status != GatePass && slices.Contains(overrides, s.Name) {
			r.Overridden = true
		}
		out = append(out, r)
	}
	return out
}

// Blocking returns the gates that stop a promotion: any that did not pass
// (unknown included: a gate that cannot tell is not a yes) and was not
// overridden.
func Blocking(results []GateResult) []GateResult {
	var b []GateResult
	for _, r := range results {
		if r.Status != GatePass && !r.Overridden {
			b = append(b, r)
		}
	}
	return b
}

func pass(reason string, args ...any) GateResult {
	return GateResult{Status: GatePass, Reason: fmt.Sprintf(reason, args...)}
}

func fail(reason string, args ...any) GateResult {
	return GateResult{Status: GateFail, Reason: fmt.Sprintf(reason, args...)}
}

func unknown(reason string, args ...any) GateResult {
	return GateResult{Status: GateUnknown, Reason: fmt.Sprintf(reason, args...)}
}

func pipelineGate(in GateInput) GateResult {
	v := in.Release.Version
	run := in.Pipeline
	if run == nil {
		return unknown("no pipeline run found for %s", v)
	}
	if run.Green() {
		return pass("pipeline for %s is green", v)
	}
	for _, st := range run.Stages {
		for _, step := range st.Steps {
			switch step.State {
			case RunFailed, RunCanceled:
				return fail("pipeline for %s %s at %s › %s (exit %d)", v, step.State, st.Name, step.Name, step.ExitCode)
			case RunRunning, RunQueued, RunWaiting:
				return fail("pipeline for %s is still running (%s › %s)", v, st.Name, step.Name)
			}
		}
		if st.State == RunFailed || st.State == RunCanceled {
			return fail("pipeline for %s %s at stage %s", v, st.State, st.Name)
		}
	}
	return fail("pipeline for %s is %s", v, run.State)
}

func soakGate(in GateInput, soak time.Duration) GateResult {
	p := in.Prev
	if p == nil {
		return pass("first environment: nothing to soak in")
	}
	rel := in.Release
	if p.Version != rel.Version {
		return fail("%s runs %s, not %s: promote it there first", p.Env, orNone(p.Version), rel.Version)
	}
	if rel.ArtifactDigest == "" || p.Digest == "" {
		return unknown("cannot prove %s runs the same artifact as %s: digest not recorded", p.Env, rel.Version)
	}
	if p.Digest != rel.ArtifactDigest {
		return fail("%s runs %s but %s is %s: build once, deploy everywhere", p.Env, short(p.Digest), rel.Version, short(rel.ArtifactDigest))
	}
	if !p.Healthy {
		return fail("%s is not healthy in %s yet", rel.Version, p.Env)
	}
	soaked := in.Now.Sub(p.Since)
	if soaked < soak {
		return fail("%s has soaked in %s for %s of %s", rel.Version, p.Env, HumanDuration(soaked), HumanDuration(soak))
	}
	return pass("%s ran %s in %s for %s (soak %s)", rel.Version, short(p.Digest), p.Env, HumanDuration(soaked), HumanDuration(soak))
}

// errorsGate passes on HEALTHY — the candidate's error rate is bounded
// below the tolerance with the verdict's confidence — and fails on SPIKE.
// An INCONCLUSIVE verdict, or none where the previous environment should
// have one, is the environment's OnInconclusive to decide.
func errorsGate(in GateInput) GateResult {
	v := in.Verdict
	if v == nil && in.Prev != nil {
		v = in.Prev.Verdict
	}
	if v == nil {
		if in.Prev == nil {
			return pass("first environment: %s has not run anywhere yet, so there are no errors to judge", in.Release.Version)
		}
		return inconclusiveGate(in, fmt.Sprintf("no error verdict on %s in %s", in.Release.Version, in.Prev.Env))
	}
	ev := v.Evidence
	switch v.Kind {
	case VerdictSpike:
		return fail("error spike in %s: %d vs %d errors at %.0f%% share, %.1f× baseline, p=%.1g",
			v.Ref.Env, ev.CandidateCount, ev.BaselineCount, ev.Share*100, ev.RateRatio, ev.PValue)
	case VerdictHealthy:
		return pass("no worse than %s× the baseline's error rate in %s with %s confidence (at most %s×; %d vs %d errors)",
			ratioText(ev.Tolerance), v.Ref.Env, confidence(ev), ratioText(ev.RateRatioHigh), ev.CandidateCount, ev.BaselineCount)
	}
	why := fmt.Sprintf("error verdict in %s is inconclusive: %d vs %d errors, not yet bounded below %s×",
		v.Ref.Env, ev.CandidateCount, ev.BaselineCount, ratioText(ev.Tolerance))
	if ev.NeedsMore > 0 {
		why += fmt.Sprintf(" (needs ~%s more at this error rate)", HumanDuration(ev.NeedsMore))
	}
	return inconclusiveGate(in, why)
}

// inconclusiveGate applies the environment's policy to missing evidence.
func inconclusiveGate(in GateInput, why string) GateResult {
	switch in.OnInconclusive {
	case InconclusivePass:
		return pass("%s; passing (on_inconclusive: pass)", why)
	case InconclusiveFail:
		return fail("%s (on_inconclusive: fail)", why)
	}
	return unknown("%s; waiting for HEALTHY (on_inconclusive: wait)", why)
}

// confidence is the verdict's confidence level, "99%".
func confidence(ev Evidence) string {
	if ev.Threshold <= 1 {
		return "unknown"
	}
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", 100*(1-1/ev.Threshold)), "0"), ".") + "%"
}

func branchGate(in GateInput) GateResult {
	allowed := in.Branches
	if len(allowed) == 0 {
		allowed = []string{"main"}
	}
	b := in.Release.Branch
	if b == "" {
		// Never a guess: a release whose branch is not known is not shown
		// to come from an allowed one.
		commit := ""
		if c := in.Release.Commit; c != "" {
			commit = " (commit " + short(c) + ")"
		}
		return fail("%s was built from an unknown branch%s: its pipeline could not tell which branch it is on; only %s may be promoted (override with a reason if you know where it came from)",
			in.Release.Version, commit, strings.Join(allowed, ", "))
	}
	if slices.Contains(allowed, b) {
		return pass("built from %s", b)
	}
	return fail("%s was built from %s; only %s may be promoted", in.Release.Version, b, strings.Join(allowed, ", "))
}

func lockGate(in GateInput) GateResult {
	l := in.Lock
	if l == nil || l.Expired(in.Now) {
		return pass("lock free")
	}
	if l.Holder.Name == in.Actor.Name {
		return pass("locked by you")
	}
	return fail("locked by %s since %s (%s ago)%s", l.Holder, l.Since.UTC().Format("15:04 UTC"), HumanDuration(in.Now.Sub(l.Since)), reasonSuffix(l.Reason))
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}

func orNone(v string) string {
	if v == "" {
		return "nothing"
	}
	return v
}

// short abbreviates a digest for people: "sha256:9f3c1a2b…".
func short(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok {
		algo, hex = "", d
	}
	if len(hex) > 8 {
		hex = hex[:8] + "…"
	}
	if algo == "" {
		return hex
	}
	return algo + ":" + hex
}
