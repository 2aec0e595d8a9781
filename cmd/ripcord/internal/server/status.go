package server

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/lease"
	"github.com/ripcordhq/ripcord/core"
)

// Status is what `ripcord status` shows: per service and environment what
// runs and who holds the lock, the operations left unfinished, and who is
// watching. The server answers it from its store; without a server the
// command reads the store itself, with the same code.
type Status struct {
	Project    string           `json:"project"`
	Envs       []EnvStatus      `json:"environments"`
	Unfinished []core.Operation `json:"unfinished_operations"`
	Watching   []core.Watcher   `json:"watching"`
	// ErrorsAsOf is when the errors and verdicts shown were reported.
	ErrorsAsOf time.Time `json:"errors_as_of,omitzero"`
	// Server is the server that answered, when one did.
	Server *lease.Record `json:"server,omitempty"`
}

// EnvStatus is one service's environment.
type EnvStatus struct {
	Service    string           `json:"service"`
	Env        string           `json:"env"`
	Deployment *core.Deployment `json:"deployment,omitempty"`
	Lock       *core.Lock       `json:"lock,omitempty"`
	// Errors (per release) and Verdict are what the error sources and
	// the observer last reported (as of Status.ErrorsAsOf).
	Errors  []ReleaseErrors    `json:"errors,omitempty"`
	Verdict *core.SpikeVerdict `json:"verdict,omitempty"`
	// Hosts are the target's hosts (a fleet's), as the server's target
	// last reported them; only a running server knows them.
	Hosts []core.HostStatus `json:"hosts,omitempty"`
}

// SetHosts fills each environment's hosts from the targets' reports.
func (s *Status) SetHosts(targets map[core.Ref]core.TargetStatus) {
	for i := range s.Envs {
		es := &s.Envs[i]
		es.Hosts = targets[core.Ref{Service: es.Service, Env: es.Env}].Hosts
	}
}

// ReleaseErrors is one release's errors in an environment.
type ReleaseErrors struct {
	Release string `json:"release"`
	// Errors is the window's total, LastMinute the last six 10 s buckets.
	Errors      int64     `json:"errors"`
	LastMinute  int64     `json:"last_minute"`
	Since       time.Time `json:"since,omitzero"` // the window's first bucket
	Warning     string    `json:"warning,omitempty"`
	Unavailable string    `json:"unavailable,omitempty"`
}

// SummarizeErrors is an error window as status shows it.
func SummarizeErrors(w core.ErrorWindow) ReleaseErrors {
	r := ReleaseErrors{Release: w.Release, Errors: w.Total(), Warning: w.Warning, Unavailable: w.Unavailable}
	if n := len(w.Buckets); n > 0 {
		r.Since = w.Buckets[0].Start
		for _, b := range w.Buckets[max(0, n-6):] {
			r.LastMinute += b.Count
		}
	}
	return r
}

// SetErrors fills each environment's errors and verdict from what was
// reported as of a time; environments without a report are left empty.
func (s *Status) SetErrors(errs map[core.Ref]map[string]core.ErrorWindow, verdicts map[core.Ref]core.SpikeVerdict, asOf time.Time) {
	s.ErrorsAsOf = asOf
	for i := range s.Envs {
		es := &s.Envs[i]
		ref := core.Ref{Service: es.Service, Env: es.Env}
		es.Errors, es.Verdict = nil, nil
		for _, w := range errs[ref] {
			es.Errors = append(es.Errors, SummarizeErrors(w))
		}
		slices.SortFunc(es.Errors, func(a, b ReleaseErrors) int { return strings.Compare(a.Release, b.Release) })
		if v, ok := verdicts[ref]; ok {
			es.Verdict = &v
		}
	}
}

// sharedErrors reads the error windows and verdicts the server running the
// error sources last shared through the store, and when.
func sharedErrors(ctx context.Context, st core.Store) (map[core.Ref]map[string]core.ErrorWindow, map[core.Ref]core.SpikeVerdict, time.Time, error) {
	errs, verdicts := map[core.Ref]map[string]core.ErrorWindow{}, map[core.Ref]core.SpikeVerdict{}
	var asOf time.Time
	facts, err := st.Shared(ctx, time.Time{})
	if err != nil {
		return nil, nil, asOf, fmt.Errorf("reading the shared error counts: %w", err)
	}
	for _, f := range facts {
		var ev core.Event
		if json.Unmarshal(f.Event, &ev) != nil {
			continue
		}
		switch {
		case ev.Kind == core.EvErrors && ev.Errors != nil:
			w := *ev.Errors
			if errs[w.Ref] == nil {
				errs[w.Ref] = map[string]core.ErrorWindow{}
			}
			errs[w.Ref][w.Release] = w
		case ev.Kind == core.EvVerdict && ev.Verdict != nil:
			verdicts[ev.Verdict.Ref] = *ev.Verdict
		default:
			continue
		}
		if f.At.After(asOf) {
			asOf = f.At
		}
	}
	return errs, verdicts, asOf, nil
}

// watcherGone is how long after its last refresh a console counts as
// gone: consoles refresh their presence every 5 s.
const watcherGone = time.Minute

// ReadStatus reads a project's status from its store. Errors and verdicts
// are what the last server running the error sources shared there.
func ReadStatus(ctx context.Context, st core.Store, project string, services, envs []string, now time.Time) (Status, error) {
	out := Status{Project: project}
	locks, err := st.Locks(ctx)
	if err != nil {
		return out, fmt.Errorf("reading the locks: %w", err)
	}
	for _, s := range services {
		for _, e := range envs {
			ref := core.Ref{Service: s, Env: e}
			es := EnvStatus{Service: s, Env: e}
			deps, err := st.Deployments(ctx, ref, 1)
			if err != nil {
				return out, fmt.Errorf("reading the deployments of %s: %w", ref, err)
			}
			if len(deps) > 0 {
				es.Deployment = &deps[0]
			}
			for _, l := range locks {
				if l.Ref == ref && !l.Expired(now) {
					l.Token = "" // a token is a capability, not a fact to print
					es.Lock = &l
				}
			}
			out.Envs = append(out.Envs, es)
		}
	}
	errs, verdicts, asOf, err := sharedErrors(ctx, st)
	if err != nil {
		return out, err
	}
	out.SetErrors(errs, verdicts, asOf)
	if out.Unfinished, err = st.Unfinished(ctx); err != nil {
		return out, fmt.Errorf("reading the unfinished operations: %w", err)
	}
	if out.Watching, err = st.Watchers(ctx, now.Add(-watcherGone)); err != nil {
		return out, fmt.Errorf("reading who is watching: %w", err)
	}
	return out, nil
}
