package core

import (
	"errors"
	"strings"
	"time"
)

// EventKind says what changed.
type EventKind string

const (
	EvPipeline   EventKind = "pipeline"   // Pipeline: a run changed
	EvLog        EventKind = "log"        // Log: a line of output
	EvDeployment EventKind = "deployment" // Deployment: state, weight or step changed
	EvTarget     EventKind = "target"     // Target: what the target reports running
	EvErrors     EventKind = "errors"     // Errors: a release's error window
	EvVerdict    EventKind = "verdict"    // Verdict: a spike verdict
	EvBackup     EventKind = "backup"     // Backup: a backup set's freshness
	EvLock       EventKind = "lock"       // Lock: taken (Lock set) or released (Lock nil)
	EvAudit      EventKind = "audit"      // Audit: an entry was appended
	EvOperation  EventKind = "operation"  // Operation: a journaled operation moved
	EvProvider   EventKind = "provider"   // Provider: a provider's health
	EvNotice     EventKind = "notice"     // Notice: something a person should read
	EvPlan       EventKind = "plan"       // Plan: an environment's rollout steps
	EvWatchers   EventKind = "watchers"   // Watchers: the consoles open on the project
	EvSituation  EventKind = "situation"  // Situation: what is possible in one service and environment
	// EvResync replaces everything a subscriber had queued when it fell so
	// far behind that even its final events did not fit: it carries a
	// fresh snapshot, which holds every final state.
	EvResync EventKind = "resync"
)

// Event is one change, published by the engine to every subscriber.
// Exactly one payload field is set, matching Kind.
type Event struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Kind EventKind `json:"kind"`
	Ref  Ref       `json:"ref,omitzero"`
	// Final events (a step finished, a verdict changed, an action done) are
	// never dropped or coalesced. Progress events with the same Key may be
	// coalesced for a slow subscriber: only the newest is delivered.
	Final bool   `json:"final,omitempty"`
	Key   string `json:"-"`
	// Severity says how urgently a notice wants a person; empty is info.
	Severity Severity `json:"severity,omitempty"`

	Pipeline   *PipelineRun    `json:"pipeline,omitempty"`
	Log        *LogLine        `json:"log,omitempty"`
	Deployment *Deployment     `json:"deployment,omitempty"`
	Target     *TargetStatus   `json:"target,omitempty"`
	Errors     *ErrorWindow    `json:"errors,omitempty"`
	Verdict    *SpikeVerdict   `json:"verdict,omitempty"`
	Backup     *Freshness      `json:"backup,omitempty"`
	Lock       *Lock           `json:"lock,omitempty"`
	Audit      *AuditEntry     `json:"audit,omitempty"`
	Operation  *Operation      `json:"operation,omitempty"`
	Provider   *ProviderHealth `json:"provider,omitempty"`
	Plan       *RolloutPlan    `json:"plan,omitempty"`
	Watchers   []Watcher       `json:"watchers,omitempty"`
	Situation  *Situation      `json:"situation,omitempty"`
	Notice     string          `json:"notice,omitempty"`
	Snapshot   *Snapshot       `json:"snapshot,omitempty"`
}

// MarshalText makes Ref usable as a JSON map key ("service/env").
func (r Ref) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses "service/env".
func (r *Ref) UnmarshalText(b []byte) error {
	s, e, ok := strings.Cut(string(b), "/")
	if !ok {
		return errors.New("ref: want service/env, got " + string(b))
	}
	r.Service, r.Env = s, e
	return nil
}

// auditKeep is how many recent audit entries a snapshot carries.
const auditKeep = 50

// Snapshot is the whole current state a screen needs. A client applies
// the events that follow it (Apply) to stay current, with the same code the
// engine uses, so the two cannot drift.
type Snapshot struct {
	Seq         uint64                         `json:"seq"`
	Project     string                         `json:"project"`
	Services    []string                       `json:"services"`
	Envs        []string                       `json:"envs"`
	Pipelines   map[string]PipelineRun         `json:"pipelines"` // latest run per service
	Deployments map[Ref]Deployment             `json:"deployments"`
	Targets     map[Ref]TargetStatus           `json:"targets"`
	Errors      map[Ref]map[string]ErrorWindow `json:"errors"` // per release
	Verdicts    map[Ref]SpikeVerdict           `json:"verdicts"`
	Backups     map[Ref]map[string]Freshness   `json:"backups"` // per set
	Locks       map[Ref]Lock                   `json:"locks"`
	Operations  map[string]Operation           `json:"operations"` // unfinished
	Providers   map[string]ProviderHealth      `json:"providers"`
	Plans       map[Ref][]RolloutStep          `json:"plans"`    // per service and environment
	Watchers    []Watcher                      `json:"watchers"` // consoles open on the project
	Situations  map[Ref]Situation              `json:"situations"`
	Audit       []AuditEntry                   `json:"audit"` // newest last
	Notices     []string                       `json:"notices,omitempty"`
}

// NewSnapshot returns an empty snapshot with its maps made.
func NewSnapshot(project string, services, envs []string) Snapshot {
	return Snapshot{
		Project:     project,
		Services:    append([]string(nil), services...),
		Envs:        append([]string(nil), envs...),
		Pipelines:   map[string]PipelineRun{},
		Deployments: map[Ref]Deployment{},
		Targets:     map[Ref]TargetStatus{},
		Errors:      map[Ref]map[string]ErrorWindow{},
		Verdicts:    map[Ref]SpikeVerdict{},
		Backups:     map[Ref]map[string]Freshness{},
		Locks:       map[Ref]Lock{},
		Operations:  map[string]Operation{},
		Providers:   map[string]ProviderHealth{},
		Plans:       map[Ref][]RolloutStep{},
		Situations:  map[Ref]Situation{},
	}
}

// Apply folds one event into the snapshot.
func (s *Snapshot) Apply(e Event) {
	if e.Seq > s.Seq {
		s.Seq = e.Seq
	}
	switch e.Kind {
	case EvPipeline:
		// The snapshot shows a service's newest run: a run that started
		// before the one shown (reported late, or replayed) does not
		// replace it; the shown run's own updates do.
		if r := e.Pipeline; r != nil {
			if cur, ok := s.Pipelines[r.Service]; !ok || cur.ID == r.ID || !r.Began().Before(cur.Began()) {
				s.Pipelines[r.Service] = *r
			}
		}
	case EvDeployment:
		if e.Deployment != nil {
			s.Deployments[e.Deployment.Ref] = *e.Deployment
		}
	case EvTarget:
		if e.Target != nil {
			s.Targets[e.Target.Ref] = *e.Target
		}
	case EvErrors:
		if e.Errors != nil {
			m := s.Errors[e.Errors.Ref]
			if m == nil {
				m = map[string]ErrorWindow{}
				s.Errors[e.Errors.Ref] = m
			}
			m[e.Errors.Release] = *e.Errors
		}
	case EvVerdict:
		if e.Verdict != nil {
			s.Verdicts[e.Verdict.Ref] = *e.Verdict
		}
	case EvBackup:
		if e.Backup != nil {
			m := s.Backups[e.Backup.Ref]
			if m == nil {
				m = map[string]Freshness{}
				s.Backups[e.Backup.Ref] = m
			}
			m[e.Backup.Facts.Set] = *e.Backup
		}
	case EvLock:
		if e.Lock != nil {
			s.Locks[e.Ref] = *e.Lock
		} else {
			delete(s.Locks, e.Ref)
		}
	case EvAudit:
		if e.Audit != nil {
			s.Audit = append(s.Audit, *e.Audit)
			if len(s.Audit) > auditKeep {
				s.Audit = append(s.Audit[:0:0], s.Audit[len(s.Audit)-auditKeep:]...)
			}
		}
	case EvOperation:
		if e.Operation != nil {
			if e.Operation.State == OpSucceeded || e.Operation.State == OpFailed {
				delete(s.Operations, e.Operation.ID)
			} else {
				s.Operations[e.Operation.ID] = *e.Operation
			}
		}
	case EvWatchers:
		s.Watchers = append([]Watcher(nil), e.Watchers...)
	case EvSituation:
		if e.Situation != nil {
			if s.Situations == nil {
				s.Situations = map[Ref]Situation{}
			}
			s.Situations[e.Situation.Ref] = *e.Situation
		}
	case EvPlan:
		if e.Plan != nil {
			s.Plans[e.Plan.Ref] = append([]RolloutStep(nil), e.Plan.Steps...)
		}
	case EvProvider:
		if e.Provider != nil {
			s.Providers[e.Provider.Name] = *e.Provider
		}
	case EvNotice:
		s.Notices = append(s.Notices, e.Notice)
		if len(s.Notices) > 20 {
			s.Notices = append(s.Notices[:0:0], s.Notices[len(s.Notices)-20:]...)
		}
	case EvResync:
		if e.Snapshot != nil {
			*s = e.Snapshot.Clone()
		}
	}
}

// Clone returns a deep copy that shares nothing mutable with s.
func (s Snapshot) Clone() Snapshot {
	c := s
	c.Services = append([]string(nil), s.Services...)
	c.Envs = append([]string(nil), s.Envs...)
	c.Pipelines = cloneMap(s.Pipelines)
	c.Deployments = cloneMap(s.Deployments)
	c.Targets = cloneMap(s.Targets)
	c.Errors = make(map[Ref]map[string]ErrorWindow, len(s.Errors))
	for k, v := range s.Errors {
		c.Errors[k] = cloneMap(v)
	}
	c.Verdicts = cloneMap(s.Verdicts)
	c.Backups = make(map[Ref]map[string]Freshness, len(s.Backups))
	for k, v := range s.Backups {
		c.Backups[k] = cloneMap(v)
	}
	c.Locks = cloneMap(s.Locks)
	c.Operations = cloneMap(s.Operations)
	c.Providers = cloneMap(s.Providers)
	c.Watchers = append([]Watcher(nil), s.Watchers...)
	c.Situations = cloneMap(s.Situations)
	c.Plans = make(map[Ref][]RolloutStep, len(s.Plans))
	for k, v := range s.Plans {
		c.Plans[k] = append([]RolloutStep(nil), v...)
	}
	c.Audit = append([]AuditEntry(nil), s.Audit...)
	c.Notices = append([]string(nil), s.Notices...)
	return c
}

// cloneMap copies a map; values are copied shallowly, which is enough
// because events always carry fresh values and Apply replaces, never
// mutates, them.
func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	c := make(map[K]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
