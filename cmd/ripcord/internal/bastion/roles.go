package bastion

import (
	"fmt"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/config"
)

// Role is what a person may do in one environment; each role may do what
// the ones before it may.
type Role int

const (
	Viewer   Role = iota // watches
	Operator             // rolls back, aborts, pauses, resumes, locks, backs up
	Releaser             // also promotes and clears holds
	Admin                // also forces locks and overrides gates
)

var roleNames = [...]string{"viewer", "operator", "releaser", "admin"}

func (r Role) String() string {
	if r < 0 || int(r) >= len(roleNames) {
		return fmt.Sprintf("role(%d)", int(r))
	}
	return roleNames[r]
}

// ParseRole reads a role as the config writes it; anything else is a
// viewer (the config refuses other words before it gets here).
func ParseRole(s string) Role {
	for i, n := range roleNames {
		if n == s {
			return Role(i)
		}
	}
	return Viewer
}

// Needs is the least role that may run cmd: what changes traffic or
// holds an environment needs an operator, what starts a release a
// releaser, and taking over someone's lock or passing a failing gate an
// admin.
func Needs(cmd core.Command) Role {
	if cmd.Kind.Reads() {
		return Viewer // reading (a step's log) is watching: every role may
	}
	need := Viewer
	switch cmd.Kind {
	case core.CmdRollback, core.CmdAbort, core.CmdPause, core.CmdResume, core.CmdRetry,
		core.CmdLock, core.CmdUnlock, core.CmdBackupNow:
		need = Operator
	case core.CmdPromote, core.CmdFullPromote, core.CmdClearHold:
		need = Releaser
	default:
		// A command kind this table does not know is refused to all but
		// admins rather than allowed to all.
		need = Admin
	}
	if cmd.Force || len(cmd.Overrides) > 0 {
		need = Admin
	}
	return need
}

// what names the command the way a refusal reads ("unlock --force").
func what(cmd core.Command) string {
	s := string(cmd.Kind)
	if cmd.Force {
		s += " --force"
	}
	if len(cmd.Overrides) > 0 {
		s += " --override"
	}
	return s
}

// Person is the operator a key belongs to.
type Person struct {
	Name        string
	Fingerprint string
	op          config.Operator
}

// Role is the person's role in env.
func (p Person) Role(env string) Role { return ParseRole(p.op.RoleFor(env)) }

// Actor is the person as the audit log records them: their name, the
// server's host, and the key they came in with.
func (p Person) Actor(host string) core.Actor {
	return core.Actor{Name: p.Name, Host: host, KeyFingerprint: p.Fingerprint}
}

// Operators are the people of one version of the config, by key.
type Operators struct {
	byKey map[string]Person
	// Loaded is when this version was read; refusals of a removed key say
	// since when.
	Loaded time.Time
}

// NewOperators reads every operator's keys (those written in the config
// and those in authorized_keys files).
func NewOperators(b *config.Bastion, now time.Time) (*Operators, error) {
	o := &Operators{byKey: map[string]Person{}, Loaded: now}
	if b == nil {
		return o, nil
	}
	for _, op := range b.Operators {
		keys, err := op.ReadKeys()
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if prev, ok := o.byKey[k.Fingerprint]; ok && prev.Name != op.Name {
				return nil, fmt.Errorf("%s: the key %s is %s's and %s's: a key must name one person", k.Pos, k.Fingerprint, prev.Name, op.Name)
			}
			o.byKey[k.Fingerprint] = Person{Name: op.Name, Fingerprint: k.Fingerprint, op: op}
		}
	}
	return o, nil
}

// Lookup finds the person of a key fingerprint.
func (o *Operators) Lookup(fingerprint string) (Person, bool) {
	p, ok := o.byKey[fingerprint]
	return p, ok
}

// Keys counts the keys known.
func (o *Operators) Keys() int { return len(o.byKey) }

// People counts the people known.
func (o *Operators) People() int {
	seen := map[string]bool{}
	for _, p := range o.byKey {
		seen[p.Name] = true
	}
	return len(seen)
}

// RoleError is a command refused for the person's role, or because their
// key is no longer an operator's. It reads as a refusal and unwraps to
// core.ErrBlocked, so the CLI exits 3 as for any refusal.
type RoleError struct{ Msg string }

func (e *RoleError) Error() string { return e.Msg }
func (e *RoleError) Unwrap() error { return core.ErrBlocked }

// Allow says whether the holder of a key may run cmd under this version of
// the config: nil, or a *RoleError saying why not ("rollback needs role
// operator in production; you are viewer").
func (o *Operators) Allow(fingerprint string, cmd core.Command) error {
	p, ok := o.byKey[fingerprint]
	if !ok {
		return &RoleError{Msg: fmt.Sprintf("the key %s is no longer an operator's (the bastion's operators were reloaded at %s)", fingerprint, o.Loaded.Format("15:04:05"))}
	}
	need, have := Needs(cmd), p.Role(cmd.Ref.Env)
	if have >= need {
		return nil
	}
	return &RoleError{Msg: fmt.Sprintf("%s needs role %s in %s; you are %s", what(cmd), need, cmd.Ref.Env, have)}
}
