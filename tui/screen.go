package tui

import (
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// screen is what every pane and dialog draws from and asks about: the
// snapshot, the styles and keys, the clock, and which service and
// environment the person is looking at. Components are handed a screen,
// never the root model, so none of them can reach into another.
type screen struct {
	snap *core.Snapshot
	st   styles
	keys keyMap
	opts *Options
	// self is this console's watcher id (Engine.Watch), so "also
	// watching" leaves the person out.
	self    string
	service string
	env     string // chosen with e; "" follows the work
	// logs are the log lines the console keeps, for the log viewer.
	logs *ring
}

func (s *screen) now() time.Time { return s.opts.Clock() }

// production reports whether env was marked production in the config: it
// is named in the production colour.
func (s *screen) production(env string) bool { return s.opts.Production[env] }

// situation is the engine's word on ref: where its rollout stands and what
// may be done there now.
func (s *screen) situation(ref core.Ref) (core.Situation, bool) {
	sit, ok := s.snap.Situations[ref]
	return sit, ok
}

// possible is whether kind may run in the focused environment now: the
// console's own refusal first (read-only), then the engine's word.
func (s *screen) possible(kind core.CommandKind) core.Possible {
	return s.possibleIn(s.focusRef(), kind)
}

func (s *screen) possibleIn(ref core.Ref, kind core.CommandKind) core.Possible {
	if s.opts.ReadOnly {
		return core.Possible{Kind: kind, Why: s.opts.ReadOnlyReason}
	}
	if s.opts.Permit != nil {
		// The person's own refusal (a role) before the engine's word:
		// asked at every frame and key, so a reloaded role shows at once.
		if err := s.opts.Permit(kind, ref); err != nil {
			return core.Possible{Kind: kind, Why: err.Error()}
		}
	}
	sit, ok := s.situation(ref)
	if !ok {
		return core.Possible{Kind: kind, Why: "waiting for the engine to say what is possible in " + ref.Env}
	}
	return sit.CommandFor(kind, s.opts.Actor)
}

// pauseKind is what the pause key does now: resume a paused rollout,
// else pause.
func (s *screen) pauseKind() core.CommandKind {
	if s.possible(core.CmdResume).Allowed {
		return core.CmdResume
	}
	return core.CmdPause
}

// focusRef is the environment actions apply to: the one chosen with e,
// else the latest environment in promotion order with a rollout taking
// traffic, else the latest one a release waits to be promoted into, else
// the last with a verdict, else the last environment.
func (s *screen) focusRef() core.Ref {
	envs := s.snap.Envs
	if s.env != "" {
		return core.Ref{Service: s.service, Env: s.env}
	}
	for i := len(envs) - 1; i >= 0; i-- {
		ref := core.Ref{Service: s.service, Env: envs[i]}
		if s.serving(ref) {
			return ref
		}
	}
	for i := len(envs) - 1; i >= 0; i-- {
		ref := core.Ref{Service: s.service, Env: envs[i]}
		if sit, ok := s.situation(ref); ok && sit.Ready != "" {
			return ref
		}
	}
	// A spike wants eyes; a healthy verdict (which every promotion now
	// waits for where the release comes from) does not.
	for i := len(envs) - 1; i >= 0; i-- {
		ref := core.Ref{Service: s.service, Env: envs[i]}
		if v, ok := s.snap.Verdicts[ref]; ok && v.Kind == core.VerdictSpike {
			return ref
		}
	}
	if len(envs) == 0 {
		return core.Ref{Service: s.service}
	}
	return core.Ref{Service: s.service, Env: envs[len(envs)-1]}
}

// serving reports whether a candidate takes traffic in ref: in the
// engine's word, or, where it has not spoken (a console that cannot act),
// by the deployment record.
func (s *screen) serving(ref core.Ref) bool {
	if sit, ok := s.situation(ref); ok && sit.Phase != "" {
		return sit.Phase.Serving()
	}
	d, ok := s.snap.Deployments[ref]
	return ok && !d.State.Terminal()
}

// versions is what an environment runs: the target's word first, the
// deployment record where the target has not reported.
func (s *screen) versions(ref core.Ref) (cur, cand string, weight int) {
	t, hasT := s.snap.Targets[ref]
	d, hasD := s.snap.Deployments[ref]
	if hasT {
		cur, cand, weight = t.Current, t.Candidate, t.Weight
	}
	if hasD && cur == "" {
		cur = d.From
		if d.State == core.DeployHealthy {
			cur = d.Version
		}
	}
	if hasD && cand == "" && !d.State.Terminal() {
		cand, weight = d.Version, d.Weight
	}
	if cand != "" && weight == 0 {
		cand = "" // installed, taking no traffic (aborted): not a rollout
	}
	return cur, cand, weight
}

// ago is how long ago t was, as a person says it: "20s", "3h", "2d 2h".
func (s *screen) ago(t time.Time) string { return age(s.now(), t) }

func age(now, t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return core.HumanDuration(now.Sub(t))
}
