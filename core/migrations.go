package core

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// MigrationsAdded lists the migrations to carries that from does not, in
// to's order: what deploying to over from applies, and what rolling back
// from to over to leaves in place.
func MigrationsAdded(from, to Release) []Migration {
	have := map[string]bool{}
	for _, m := range from.Migrations {
		have[m.ID] = true
	}
	var out []Migration
	for _, m := range to.Migrations {
		if !have[m.ID] {
			out = append(out, m)
		}
	}
	return out
}

// Tables lists the tables the migration's changes of kind k touch, in
// first-seen order (all kinds when k is empty).
func (m Migration) Tables(k MigrationKind) []string {
	var out []string
	for _, c := range m.Changes {
		if c.Table != "" && (k == "" || c.Kind == k) && !slices.Contains(out, c.Table) {
			out = append(out, c.Table)
		}
	}
	return out
}

// Affects says what the migration changes, for a person: "drop column
// users.name, create index on orders".
func (m Migration) Affects() string {
	var parts []string
	for _, c := range m.Changes {
		s := c.Action
		switch {
		case c.Column != "" && c.Table != "":
			s += " " + c.Table + "." + c.Column
		case c.Table != "":
			s += " " + c.Table
		}
		if !slices.Contains(parts, s) {
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return m.Reason
	}
	return strings.Join(parts, ", ")
}

// Describe is the migration in one line: "0007_drop_name contract: drop
// column users.name".
func (m Migration) Describe() string {
	s := m.ID + " " + string(m.Kind)
	if a := m.Affects(); a != "" {
		s += ": " + a
	}
	return s
}

func migrationIDs(ms []Migration) string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return strings.Join(ids, ", ")
}

func byKind(ms []Migration, k MigrationKind) []Migration {
	var out []Migration
	for _, m := range ms {
		if m.Kind == k {
			out = append(out, m)
		}
	}
	return out
}

// migrationsGate judges the migrations the candidate adds over the release
// it replaces. Expand-only passes: the running release keeps working on
// the new schema. A contract needs the expand step it finishes to have
// shipped one release earlier (expand → migrate → contract), and a backup
// newer than the candidate's build.
func migrationsGate(in GateInput) GateResult {
	rel := in.Release
	if rel.MigrationsUnknown != "" {
		return unknown("%s: its migrations could not be read: %s", rel.Version, rel.MigrationsUnknown)
	}
	if in.MigrationsUnread != "" && len(rel.Migrations) == 0 {
		// Passing keeps such a service promotable, as it was before
		// Ripcord read migrations at all; the reason says no check ran.
		return pass("not checked: %s", in.MigrationsUnread)
	}
	if in.StableVersion == "" {
		if len(rel.Migrations) == 0 {
			return pass("%s carries no migrations", rel.Version)
		}
		return pass("nothing runs in %s yet: no release depends on the schema before %s's %d migration(s)", in.Ref.Env, rel.Version, len(rel.Migrations))
	}
	if in.Stable == nil {
		return unknown("%s, which runs in %s, is not in the release store: cannot tell which migrations %s adds", in.StableVersion, in.Ref.Env, rel.Version)
	}
	stable := *in.Stable
	if stable.MigrationsUnknown != "" {
		return unknown("the migrations of %s, which runs in %s, could not be read (%s): cannot tell which %s adds", stable.Version, in.Ref.Env, stable.MigrationsUnknown, rel.Version)
	}
	added := MigrationsAdded(stable, rel)
	contract := byKind(added, MigrationContract)
	if len(contract) == 0 {
		if len(added) == 0 {
			return pass("%s adds no migrations over %s", rel.Version, stable.Version)
		}
		return pass("%s adds expand-only migrations over %s (%s): %s keeps working on the new schema; rollback is free",
			rel.Version, stable.Version, migrationIDs(added), stable.Version)
	}
	var problems []string
	for _, c := range contract {
		if p := expandProblem(c, stable, added); p != "" {
			problems = append(problems, p)
		}
	}
	if p := backupContractProblem(in.Backups, rel.BuiltAt); p != "" {
		problems = append(problems, fmt.Sprintf("%s (%s): %s", rel.Version, migrationIDs(contract), strings.TrimPrefix(p, "release carries a contract migration: ")))
	}
	if len(problems) > 0 {
		return fail("%s", strings.Join(problems, "; "))
	}
	return pass("%s contracts (%s) one release after %s expanded the same tables; a backup newer than its build exists",
		rel.Version, contractSummary(contract), stable.Version)
}

func contractSummary(ms []Migration) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.ID + ": " + m.Affects()
	}
	return strings.Join(parts, "; ")
}

// expandProblem says why contract migration c is not the second half of an
// expand/contract pair whose expand the stable release already shipped,
// or "" when it is.
func expandProblem(c Migration, stable Release, added []Migration) string {
	tables := c.Tables(MigrationContract)
	if len(tables) == 0 {
		return fmt.Sprintf("%s is a contract (%s) and names no table to match an expand step against", c.ID, c.Reason)
	}
	for _, t := range tables {
		// An expand of t in this same release is looked for first: an
		// older expand of t in the stable release (any column added to
		// the table since it was created) does not show that the stable
		// release already writes what this contract leaves.
		same := ""
		for _, a := range added {
			if a.ID != c.ID && expandsColumnsOf(a, t) {
				same = a.ID
				break
			}
		}
		earlier := slices.ContainsFunc(stable.Migrations, func(m Migration) bool { return expandsColumnsOf(m, t) })
		switch {
		case same != "" && !earlier:
			return fmt.Sprintf("%s (%s) ships in the same release as its expand step %s: ship the expand one release earlier (expand → migrate → contract)", c.ID, c.Affects(), same)
		case same != "":
			return fmt.Sprintf("%s (%s) ships in the same release as %s, which also expands %s: if that is the expand it finishes, ship it one release earlier (expand → migrate → contract); if it finishes an expand %s already runs, override with that reason",
				c.ID, c.Affects(), same, t, stable.Version)
		case !earlier:
			return fmt.Sprintf("%s (%s), but %s shipped no expand step on %s (a new column written alongside the old): ship the expand one release before the contract", c.ID, c.Affects(), stable.Version, t)
		}
	}
	return ""
}

// expandSteps are the changes that make an expand step: the table's
// columns grow or relax so old and new code can both write. Creating the
// table in the first place, or indexing it, is not such a step.
var expandSteps = []string{"add column", "backfill", "drop NOT NULL on column", "set the default of column"}

func expandsColumnsOf(m Migration, table string) bool {
	return slices.ContainsFunc(m.Changes, func(c SchemaChange) bool {
		return c.Kind == MigrationExpand && c.Table == table && slices.Contains(expandSteps, c.Action)
	})
}

// RollbackCrossing is what a rollback does to the schema: the migrations
// the release being left carries over the one rolled back to stay in
// place, because code is rolled back and the schema is not.
type RollbackCrossing struct {
	Ref      Ref
	From, To string
	// Unknown says why the crossing could not be worked out (a release is
	// not in the store, or its migrations could not be read).
	Unknown string
	// Crossed are From's migrations that To does not carry.
	Crossed []Migration
	// NotRead says why neither release's migrations were read at all
	// (see Unread): "none crossed" would then claim what nobody checked.
	NotRead string
	// Since is when From reached the environment: a backup from before it
	// holds the schema To was written for.
	Since   time.Time
	Backups []Freshness
}

// NewRollbackCrossing works out what rolling ref back from `from` to `to`
// crosses. Either release may be nil when the store does not hold it.
func NewRollbackCrossing(ref Ref, fromVersion string, from *Release, toVersion string, to *Release, since time.Time, backups []Freshness) RollbackCrossing {
	c := RollbackCrossing{Ref: ref, From: fromVersion, To: toVersion, Since: since, Backups: backups}
	switch {
	case from == nil:
		c.Unknown = fromVersion + " is not in the release store"
	case to == nil:
		c.Unknown = toVersion + " is not in the release store"
	case from.MigrationsUnknown != "":
		c.Unknown = "the migrations of " + fromVersion + " could not be read: " + from.MigrationsUnknown
	case to.MigrationsUnknown != "":
		c.Unknown = "the migrations of " + toVersion + " could not be read: " + to.MigrationsUnknown
	default:
		c.Crossed = MigrationsAdded(*to, *from)
	}
	return c
}

// Unread marks a crossing that found no migrations where nothing reads
// the service's migrations (why, from the situation or the environment);
// an empty why changes nothing.
func (c *RollbackCrossing) Unread(why string) {
	if why != "" && c.Unknown == "" && len(c.Crossed) == 0 {
		c.NotRead = why
	}
}

// Contract lists the crossed migrations that remove or rewrite.
func (c RollbackCrossing) Contract() []Migration { return byKind(c.Crossed, MigrationContract) }

// Gate is the rollback's migrations check: crossing a contract migration
// is blocked unless a person overrides it with a reason (the controller
// enforces the person and the reason). Unknown facts do not block a
// rollback in an incident; the reason says what is not known.
func (c RollbackCrossing) Gate() GateResult {
	r := GateResult{Gate: GateMigrations, Status: GatePass}
	contract := c.Contract()
	switch {
	case c.Unknown != "":
		r.Reason = "migrations between " + c.From + " and " + c.To + " unknown: " + c.Unknown
	case c.NotRead != "":
		r.Reason = "migrations not checked: " + c.NotRead
	case len(c.Crossed) == 0:
		r.Reason = c.From + " carries no migrations over " + c.To
	case len(contract) == 0:
		r.Reason = fmt.Sprintf("%s's migrations over %s are expand-only (%s): %s runs on the schema they leave; rollback is free", c.From, c.To, migrationIDs(c.Crossed), c.To)
	default:
		r.Status = GateFail
		r.Reason = fmt.Sprintf("rolling back to %s crosses contract migration %s: %s was written for the schema before it, and the rollback does not undo it (restore %s from a backup taken before %s reached %s); a person may override with a reason",
			c.To, contractSummary(contract), c.To, c.BackupSetsWord(), c.From, c.Ref.Env)
	}
	return r
}

// BackupSetsWord names the backup sets for the restore hint.
func (c RollbackCrossing) BackupSetsWord() string {
	var names []string
	for _, f := range c.Backups {
		names = append(names, backupSetName(f.Facts))
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "the database"
	}
	return strings.Join(names, ", ")
}

// Lines states the crossing for a confirmation: each migration with what
// it touches and whether it is safe to leave in place, then each backup
// set's newest backup and whether it is from before From arrived.
func (c RollbackCrossing) Lines() []string {
	var out []string
	switch {
	case c.Unknown != "":
		out = append(out, "migrations: unknown: "+c.Unknown)
	case c.NotRead != "":
		out = append(out, "migrations: not checked: "+c.NotRead)
	case len(c.Crossed) == 0:
		out = append(out, "migrations: "+c.From+" carries none over "+c.To)
	default:
		out = append(out, "migrations "+c.From+" carries over "+c.To+" (they stay applied):")
		for _, m := range c.Crossed {
			if m.Kind == MigrationContract {
				out = append(out, "  ✗ "+m.Describe()+" — "+c.To+" may fail on the schema it leaves, and rows written since may be lost")
			} else {
				out = append(out, "  ✓ "+m.Describe()+" — safe to keep")
			}
		}
	}
	if len(c.Contract()) > 0 || c.Unknown != "" {
		out = append(out, c.backupLines()...)
	}
	return out
}

func (c RollbackCrossing) backupLines() []string {
	if len(c.Backups) == 0 {
		return []string{"newest backup from before " + c.From + ": none watched in " + c.Ref.Env}
	}
	fs := slices.Clone(c.Backups)
	slices.SortFunc(fs, func(a, b Freshness) int { return strings.Compare(a.Facts.Set, b.Facts.Set) })
	since := "arrived"
	if !c.Since.IsZero() {
		since = "reached " + c.Ref.Env + " at " + utcClock(c.Since, c.Since)
	}
	var out []string
	for _, f := range fs {
		at := f.Facts.BackupTime()
		name := backupSetName(f.Facts)
		switch {
		case at.IsZero():
			out = append(out, fmt.Sprintf("newest %s backup: none recorded", name))
		case c.Since.IsZero():
			out = append(out, fmt.Sprintf("newest %s backup: %s (when %s arrived is not recorded)", name, utcClock(at, at), c.From))
		case at.Before(c.Since):
			out = append(out, fmt.Sprintf("newest %s backup from before %s: %s, %s before it %s", name, c.From, utcClock(at, c.Since), HumanDuration(c.Since.Sub(at)), since))
		default:
			out = append(out, fmt.Sprintf("newest %s backup: %s, after %s %s (it holds the new schema; the tool's older backups are not reported)", name, utcClock(at, c.Since), c.From, since))
		}
	}
	return out
}
