package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
	"github.com/ripcordhq/ripcord/tui/prompt"
)

// seedState writes a history and an audit log to cfg's state file, as a
// rollback of v2 would leave them: v2 rolled back to v1 by ana, with a
// reason, after a promote that overrode the backups gate.
func seedState(t *testing.T, db string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	prod := core.Ref{Service: "api", Env: "production"}
	ana := core.Actor{Name: "ana", Host: "bastion-1"}
	at := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	for _, d := range []core.Deployment{
		{Ref: prod, Version: "v1", State: core.DeployHealthy, Weight: 100, StartedAt: at, FinishedAt: at, Actor: ana},
		{Ref: prod, Version: "v2", From: "v1", State: core.DeployRolledBack, Weight: 25, StartedAt: at.Add(time.Minute), Actor: ana},
		{Ref: prod, Version: "v1", State: core.DeployHealthy, Weight: 100, StartedAt: at.Add(2 * time.Minute), FinishedAt: at.Add(2 * time.Minute), Actor: ana},
	} {
		if _, err := st.AddDeployment(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []core.AuditEntry{
		{At: at.Add(time.Minute), Actor: ana, Action: "promote", Ref: prod, From: "v1", To: "v2", Overrides: []string{"backups"}, Reason: "CI is down", Outcome: "deployed at 25%", Duration: 1500 * time.Millisecond},
		{At: at.Add(2 * time.Minute), Actor: ana, Action: "rollback", Ref: prod, From: "v2", To: "v1", Reason: "checkout errors", Outcome: "rolled back to v1", Duration: 90 * time.Second},
	} {
		if _, err := st.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
}

// -o json and --output json are accepted wherever --json is, and print
// the same JSON.
func TestOutputJSONEverywhereJSONIs(t *testing.T) {
	cfg, db := stateConfig(t)
	seedState(t, db)
	for _, args := range [][]string{
		{"status"}, {"history", "api", "--env", "production"}, {"audit"}, {"version"},
	} {
		want := runOK(t, append(append([]string{}, args...), "--json", "-c", cfg)...)
		for _, flag := range [][]string{{"-o", "json"}, {"--output", "json"}, {"--output=json"}} {
			if got := runOK(t, append(append(append([]string{}, args...), flag...), "-c", cfg)...); got != want && args[0] != "status" {
				t.Errorf("%v %v printed something else than --json:\n%s\nwant:\n%s", args, flag, got, want)
			}
		}
		if code, _, errs := ripcord(t, append(append([]string{}, args...), "-o", "yaml", "-c", cfg)...); code != exitUsage || !strings.Contains(errs, "want json or text") {
			t.Errorf("%v -o yaml: exit %d, %q; want a usage error", args, code, errs)
		}
	}
}

func runOK(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := ripcord(t, args...)
	if code != exitOK {
		t.Fatalf("%v: exit %d: %s", args, code, errs)
	}
	return out
}

// JSON durations are seconds, with the duration in words beside them;
// empty lists are [], never null.
func TestJSONDurationsAndEmptyLists(t *testing.T) {
	cfg, db := stateConfig(t)
	seedState(t, db)
	var export struct {
		Entries []map[string]any `json:"entries"`
	}
	if err := json.Unmarshal([]byte(runOK(t, "audit", "-o", "json", "-c", cfg)), &export); err != nil {
		t.Fatal(err)
	}
	entries := export.Entries
	if len(entries) != 2 {
		t.Fatalf("%d entries", len(entries))
	}
	if d, text := entries[1]["duration"], entries[1]["duration_text"]; d != 90.0 || text != "1m" {
		t.Errorf("rollback duration = %v (%v), want 90 seconds (1m)", d, text)
	}
	if d, text := entries[0]["duration"], entries[0]["duration_text"]; d != 1.5 || text != "1.5s" {
		t.Errorf("promote duration = %v (%v), want 1.5 seconds", d, text)
	}
	// Seconds do not cost the export its proof: read back, every entry
	// hashes to the hash it carries.
	var typed struct {
		Entries []auditJSON `json:"entries"`
	}
	if err := json.Unmarshal([]byte(runOK(t, "audit", "--json", "-c", cfg)), &typed); err != nil {
		t.Fatal(err)
	}
	for _, a := range typed.Entries {
		if e := a.entry(); core.HashAudit(e) != e.Hash {
			t.Errorf("entry %d read back from the export does not hash to its hash", e.Seq)
		}
	}
	if g, ok := entries[1]["gates"].([]any); !ok || len(g) != 0 {
		t.Errorf("rollback gates = %#v, want []", entries[1]["gates"])
	}
	status := runOK(t, "status", "-o", "json", "-c", cfg)
	for _, key := range []string{`"unfinished_operations": []`, `"watching": []`} {
		if !strings.Contains(status, key) {
			t.Errorf("status lacks %s:\n%s", key, status)
		}
	}
	if out := runOK(t, "history", "api", "--env", "production", "-o", "json", "-c", writeConfig(t, t.TempDir(), "")); strings.TrimSpace(out) != "[]" {
		t.Errorf("an empty history printed %q, want []", out)
	}
}

// The text audit says why (reasons and overridden gates); a rollback's
// history row says what it replaced.
func TestTextAuditAndHistorySayWhy(t *testing.T) {
	cfg, db := stateConfig(t)
	seedState(t, db)
	audit := runOK(t, "audit", "-c", cfg)
	for _, want := range []string{"WHY", "overrode backups: CI is down", "checkout errors"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit lacks %q:\n%s", want, audit)
		}
	}
	hist := runOK(t, "history", "api", "--env", "production", "-c", cfg)
	first := strings.Split(hist, "\n")[1]
	if !strings.Contains(first, "v1") || !strings.Contains(first, "v2 (rolled back)") {
		t.Errorf("the restored release's row = %q; want it to name v2 as rolled back", first)
	}
}

// validate takes the file as an argument too, and counts in words.
func TestValidateFileArgument(t *testing.T) {
	cfg := writeConfig(t, t.TempDir(), "")
	out := runOK(t, "validate", cfg)
	if !strings.Contains(out, "1 service,") || strings.Contains(out, "1 services") {
		t.Errorf("validate said %q", out)
	}
	if code, _, errs := ripcord(t, "validate", filepath.Join(t.TempDir(), "nope.yaml")); code != exitFailed || !strings.Contains(errs, "nope.yaml") {
		t.Errorf("validate of a missing file: exit %d, %q", code, errs)
	}
}

// The CLI asks with the console's statement: y confirms; enter, n or
// anything else cancels; type-name wants the service's name.
func TestAskConfirmsOnlyWithY(t *testing.T) {
	stmt := prompt.Statement{Title: "rollback api in production: v2 → v1", Lines: []prompt.Line{{Indent: 1, Spans: []prompt.Span{{Text: "v1 serves all of production at once"}}}}}
	for answer, ok := range map[string]bool{"y\n": true, "\n": false, "n\n": false, "yes\n": false} {
		var out bytes.Buffer
		err := ask(&out, strings.NewReader(answer), stmt, "y", "api")
		if (err == nil) != ok {
			t.Errorf("answer %q: err %v", answer, err)
		}
		if !strings.Contains(out.String(), "rollback api in production: v2 → v1\n v1 serves all of production at once\n") || !strings.Contains(out.String(), "[y/N]") {
			t.Errorf("asked:\n%s", out.String())
		}
		var ex *exitError
		if err != nil && (!errors.As(err, &ex) || ex.code != exitFailed) {
			t.Errorf("a cancel exits %v", err)
		}
	}
	var out bytes.Buffer
	if err := ask(&out, strings.NewReader("y\n"), stmt, "type-name", "api"); err == nil {
		t.Error("y confirmed under type-name")
	}
	if err := ask(&out, strings.NewReader("api\n"), stmt, "type-name", "api"); err != nil {
		t.Errorf("the typed name did not confirm: %v", err)
	}
}
