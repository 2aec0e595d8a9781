package main

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ripcordhq/ripcord/core"
)

// outputFormat is the value of -o/--output: text (the default) or json,
// as gh and kubectl users type it. It sets the same switch as --json.
type outputFormat struct{ json *bool }

func (o outputFormat) String() string {
	if o.json != nil && *o.json {
		return "json"
	}
	return "text"
}

func (o outputFormat) Set(v string) error {
	switch v {
	case "json":
		*o.json = true
	case "text":
		*o.json = false
	default:
		return fmt.Errorf("want json or text, got %q", v)
	}
	return nil
}

func (o outputFormat) Type() string { return "format" }

// jsonFlags adds --json and its equivalent -o/--output json to cmd.
func jsonFlags(cmd *cobra.Command, asJSON *bool) {
	cmd.Flags().BoolVar(asJSON, "json", false, "print JSON (the same as -o json)")
	cmd.Flags().VarP(outputFormat{asJSON}, "output", "o", "output format: text or json")
}

// seconds is a duration in JSON: seconds as a number, for scripts.
func seconds(d time.Duration) float64 { return d.Seconds() }

// auditJSON is an audit entry as `audit --json` prints it: the duration in
// seconds and in words, instead of Go's nanoseconds.
type auditJSON struct {
	core.AuditEntry
	Duration     float64           `json:"duration,omitempty"`
	DurationText string            `json:"duration_text,omitempty"`
	Gates        []core.GateResult `json:"gates"`
	Overrides    []string          `json:"overrides"`
}

func auditOut(entries []core.AuditEntry) []auditJSON {
	out := make([]auditJSON, 0, len(entries))
	for _, e := range entries {
		a := auditJSON{AuditEntry: e, Gates: e.Gates, Overrides: e.Overrides}
		if a.Gates == nil {
			a.Gates = []core.GateResult{}
		}
		if a.Overrides == nil {
			a.Overrides = []string{}
		}
		if e.Duration > 0 {
			a.Duration, a.DurationText = seconds(e.Duration), core.HumanDuration(e.Duration)
			if e.Duration < time.Minute {
				a.DurationText = e.Duration.Round(time.Millisecond).String()
			}
		}
		out = append(out, a)
	}
	return out
}

// entry is the audit entry an exported one was made from: a script in Go
// reads the export back with it.
func (a auditJSON) entry() core.AuditEntry {
	e := a.AuditEntry
	e.Duration = time.Duration(math.Round(a.Duration * float64(time.Second)))
	e.Gates, e.Overrides = a.Gates, a.Overrides
	if len(e.Gates) == 0 {
		e.Gates = nil
	}
	if len(e.Overrides) == 0 {
		e.Overrides = nil
	}
	return e
}

// auditWhy is an entry's reason and overrides, as the text table shows
// them.
func auditWhy(e core.AuditEntry) string {
	var parts []string
	if len(e.Overrides) > 0 {
		parts = append(parts, "overrode "+strings.Join(e.Overrides, ", "))
	}
	if e.Reason != "" {
		parts = append(parts, e.Reason)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ": ")
}

// historyFrom is what a history row says it replaced: its From, or, for
// the release a rollback restored (recorded without one), the release
// rolled back right before it.
func historyFrom(deps []core.Deployment, i int) string {
	d := deps[i]
	if d.From != "" {
		return d.From
	}
	if i+1 < len(deps) && deps[i+1].State == core.DeployRolledBack {
		return deps[i+1].Version + " (rolled back)"
	}
	return "-"
}

// plural is "1 service", "2 services".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
