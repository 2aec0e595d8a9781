package server

import (
	"context"
	"fmt"
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
	// Server is the server that answered, when one did.
	Server *lease.Record `json:"server,omitempty"`
}

// EnvStatus is one service's environment.
type EnvStatus struct {
	Service    string           `json:"service"`
	Env        string           `json:"env"`
	Deployment *core.Deployment `json:"deployment,omitempty"`
	Lock       *core.Lock       `json:"lock,omitempty"`
}

// watcherGone is how long after its last refresh a console counts as
// gone: consoles refresh their presence every 5 s.
const watcherGone = time.Minute

// ReadStatus reads a project's status from its store.
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
	if out.Unfinished, err = st.Unfinished(ctx); err != nil {
		return out, fmt.Errorf("reading the unfinished operations: %w", err)
	}
	if out.Watching, err = st.Watchers(ctx, now.Add(-watcherGone)); err != nil {
		return out, fmt.Errorf("reading who is watching: %w", err)
	}
	return out, nil
}
