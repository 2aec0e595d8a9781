package core

import (
	"time"
)

// Phase is where the release work in one service and environment really
// stands, as the engine running it knows: not what a deployment record last
// said, but whether a controller is still taking the rollout through its
// steps, a person paused it, or it has ended and how.
type Phase string

const (
	// PhaseIdle: nothing in flight; Stable serves all traffic.
	PhaseIdle Phase = "idle"
	// PhaseDeploying: a promote is deploying Candidate's first step; the
	// rollout starts (pause and abort apply) once it takes its share.
	PhaseDeploying Phase = "deploying"
	// PhaseRolling: the controller is taking Candidate through its steps.
	PhaseRolling Phase = "in-flight"
	// PhasePaused: a person paused the rollout; it holds before its next
	// step until someone resumes it.
	PhasePaused Phase = "paused"
	// PhaseJudgment: a pause step waits for a person to promote or roll
	// back.
	PhaseJudgment Phase = "waiting-for-judgment"
	// PhaseDegraded: the rollout stopped (a failed analysis, a step that
	// failed) with Candidate still taking Weight% of traffic. Nothing moves
	// on its own: abort or roll back.
	PhaseDegraded Phase = "degraded"
	// PhaseRolledBack: Stable was put back over Candidate, which is held.
	PhaseRolledBack Phase = "rolled-back"
	// PhaseAborted: traffic went back to Stable; Candidate stays installed
	// for inspection.
	PhaseAborted Phase = "aborted"
	// PhaseFailed: deploying Candidate failed; Stable serves.
	PhaseFailed Phase = "failed"
)

// Serving reports whether the phase's Candidate may still take traffic:
// its errors are a present danger, not history.
func (p Phase) Serving() bool {
	switch p {
	case PhaseDeploying, PhaseRolling, PhasePaused, PhaseJudgment, PhaseDegraded:
		return true
	}
	return false
}

// Possible is the engine's answer to "could this command run here now?",
// with the reason a person can act on when it could not, and the
// releases it would move between when it could.
type Possible struct {
	Kind    CommandKind `json:"kind"`
	Allowed bool        `json:"allowed"`
	// Why is the refusal when not allowed, and what the command will do
	// when allowed ("traffic goes back to v1.4.2 at once").
	Why string `json:"why"`
	// From and To are the releases it moves between; To is the command's
	// Version (the release promote starts, the one rollback restores).
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Note is what a person should know before confirming an allowed
	// command ("v1.5.0 is held: it was rolled back by ana").
	Note string `json:"note,omitempty"`
	// Options are the values the command's Version may take where it is a
	// choice the engine accepts (the backup sets that can run now).
	Options []string `json:"options,omitempty"`
	// Overridable names the failing gates that alone refuse the command: a
	// person may override them with a reason (the CLI's --override).
	Overridable []string `json:"overridable,omitempty"`
	// Holder is set when nothing but a lock refuses the command and the
	// lock's holder may still run it (a person's commands run under their
	// own lock); HolderWhy is then what it would do. Use CommandFor.
	Holder    *Actor `json:"holder,omitempty"`
	HolderWhy string `json:"holder_why,omitempty"`
}

// Hold is a release that was rolled back: automation will not promote it
// again until a person clears the hold.
type Hold struct {
	Version string `json:"version"`
	Reason  string `json:"reason"`
}

// Situation is what a screen (or a CLI prompt) needs to decide about one
// service in one environment, published by the engine that runs its
// rollouts: where the rollout really stands, which commands it would
// accept now and why not, what promote would meet at the gates, and
// which releases are held. Screens render it; they never re-derive it.
type Situation struct {
	Ref   Ref   `json:"ref"`
	Phase Phase `json:"phase"`
	// Stable is the release serving the rest of the traffic (all of it
	// when no candidate takes any); Candidate is the release the phase is
	// about, and Weight its share of traffic now.
	Stable    string `json:"stable,omitempty"`
	Candidate string `json:"candidate,omitempty"`
	Weight    int    `json:"weight"`
	// Step is the rollout step the candidate is at (0-based) and Steps how
	// many the environment's plan has.
	Step  int `json:"step"`
	Steps int `json:"steps"`
	// By is who brought the phase about (promoted, paused, rolled back,
	// aborted) and Since when.
	By    Actor     `json:"by,omitzero"`
	Since time.Time `json:"since,omitzero"`
	// Why says what happened and what a person can do, in a sentence.
	Why string `json:"why,omitempty"`
	// Commands lists every command a screen offers, in CommandOrder.
	Commands []Possible `json:"commands"`
	// Gates are the configured gates as promote of Commands' promote To
	// would meet them now.
	Gates []GateResult `json:"gates"`
	// Ready is the release waiting at this environment's door: it runs
	// settled in the environment before, not here, it is not held, and
	// promote would start it now.
	Ready string `json:"ready,omitempty"`
	// Holds are the service's held releases, newest first.
	Holds []Hold `json:"holds"`
	// Acting is false when no engine that could act here published this
	// (its providers did not start); Commands then all say why.
	Acting bool `json:"acting"`
	// MigrationsUnread says why nothing reads this service's migrations
	// ("" when its pipeline does): a rollback's check then says it did not
	// check, on every screen that works one out.
	MigrationsUnread string `json:"migrations_unread,omitempty"`
}

// CommandOrder is the order of a Situation's Commands: the commands a
// screen offers on keys.
var CommandOrder = []CommandKind{CmdPromote, CmdFullPromote, CmdRollback, CmdAbort, CmdPause, CmdResume, CmdBackupNow}

// Command is the engine's word on kind; a kind it did not speak about is
// refused, saying so.
func (s Situation) Command(kind CommandKind) Possible {
	for _, p := range s.Commands {
		if p.Kind == kind {
			return p
		}
	}
	return Possible{Kind: kind, Why: "the engine has not said whether " + string(kind) + " is possible in " + s.Ref.Env}
}

// CommandFor is the engine's word on kind for one person: a command that
// only a lock refuses is allowed for the lock's holder, whose commands run
// under it. Per-person rules (roles, on the bastion) belong here too, so a
// screen asks one place.
func (s Situation) CommandFor(kind CommandKind, who Actor) Possible {
	p := s.Command(kind)
	if !p.Allowed && p.Holder != nil && SamePerson(*p.Holder, who) {
		p.Allowed, p.Why = true, p.HolderWhy
	}
	return p
}

// Held reports whether version is held, and why.
func (s Situation) Held(version string) (Hold, bool) {
	for _, h := range s.Holds {
		if h.Version == version {
			return h, true
		}
	}
	return Hold{}, false
}

// Severity says how urgently an event (a notice) wants a person.
type Severity string

const (
	SeverityInfo     Severity = "info"     // for the record: a step done, a release live
	SeverityWarn     Severity = "warn"     // worth a look: a lock lost, a rollout waiting
	SeverityCritical Severity = "critical" // act now: a spike, a failed or unfinished operation
)

// Handles reports whether a command of kind has a handler here: an engine
// whose providers did not start has none for the rollout commands.
func (e *Engine) Handles(kind CommandKind) bool {
	e.hmu.RLock()
	defer e.hmu.RUnlock()
	return e.handlers[kind] != nil
}

// Unavailable is why commands without a handler cannot run here, "" when
// no reason was given.
func (e *Engine) Unavailable() string {
	e.hmu.RLock()
	defer e.hmu.RUnlock()
	return e.unavailable
}

// publishUnavailable tells every screen that nothing can be done from
// this engine, and why: for each service and environment a Situation
// whose commands all carry the reason.
func (e *Engine) publishUnavailable(why string) {
	snap := e.Snapshot()
	for _, svc := range snap.Services {
		for _, env := range snap.Envs {
			ref := Ref{Service: svc, Env: env}
			s := Situation{Ref: ref, Gates: []GateResult{}, Holds: []Hold{}}
			if cur, ok := snap.Situations[ref]; ok {
				s = cur
			}
			s.Acting = false
			s.Ready = ""
			s.Commands = make([]Possible, 0, len(CommandOrder))
			for _, k := range CommandOrder {
				s.Commands = append(s.Commands, Possible{Kind: k, Why: why})
			}
			e.Publish(Event{Kind: EvSituation, Ref: ref, Final: true, Situation: &s})
		}
	}
}
