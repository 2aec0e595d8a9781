package core

import (
	"context"
	"fmt"
)

// Client is what a screen needs from an engine: the state and its events,
// the commands, the history a rollback picks from, and presence. The
// engine in this process satisfies it, and so does a connection to the
// project's server; a screen written against Client cannot tell which it
// has, so the console, the SSH bastion and the CLI behave alike.
type Client interface {
	// Subscribe returns the current state and the stream of every event
	// after it; applying the events in order keeps the state current.
	Subscribe() (Snapshot, *Subscription)
	// Do runs a command on behalf of its actor.
	Do(ctx context.Context, cmd Command) (Result, error)
	// Deployments lists ref's deployments, newest first.
	Deployments(ctx context.Context, ref Ref, limit int) ([]Deployment, error)
	// Release reads one release of a service.
	Release(ctx context.Context, service, version string) (Release, error)
	// Watch records actor as watching the project until stop is called or
	// ctx ends, and returns the watcher's id so a screen can tell itself
	// from the others.
	Watch(ctx context.Context, actor Actor) (id string, stop func())
}

var _ Client = (*Engine)(nil)

// Deployments lists ref's deployments from the store, newest first; an
// engine without a store has none.
func (e *Engine) Deployments(ctx context.Context, ref Ref, limit int) ([]Deployment, error) {
	if e.store == nil {
		return nil, nil
	}
	deps, err := e.store.Deployments(ctx, ref, limit)
	if err != nil {
		return nil, fmt.Errorf("reading the deployments of %s: %w", ref, err)
	}
	return deps, nil
}

// Release reads one release from the store.
func (e *Engine) Release(ctx context.Context, service, version string) (Release, error) {
	if e.store == nil {
		return Release{}, fmt.Errorf("release %s %s: %w", service, version, ErrNotFound)
	}
	return e.store.Release(ctx, service, version)
}
