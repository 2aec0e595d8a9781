package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A name the config does not know is refused with exit 2 and a "did you
// mean" before any store is written or provider started: a typo never
// prints an empty table, never reaches a provider, and is never taken
// for a gate nobody has.
func TestCommandArgumentsAreCheckedAgainstTheConfig(t *testing.T) {
	w := newCLIWorld(t, "    gates: [pipeline, lock]\n")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"history", "api", "--env", "prod"}, `no environment "prod" in `},
		{[]string{"history", "api", "--env", "prod"}, `did you mean "production"?`},
		{[]string{"history", "apj", "--env", "production"}, `no service "apj"`},
		{[]string{"console", "--service", "apu"}, `--service: no service "apu"`},
		{[]string{"promote", "api", "--to", "production", "--version", "v1", "--yes", "--override", "nosuchgate", "--reason", "r"}, `production has no gate "nosuchgate"; its gates are pipeline, lock`},
		{[]string{"promote", "api", "--to", "production", "--version", "v1", "--yes", "--override", "pipline", "--reason", "r"}, `did you mean "pipeline"?`},
		{[]string{"rollback", "api", "--env", "production", "--to", "v9.9.9", "--yes"}, `no release v9.9.9 of api is known`},
		{[]string{"promote", "api", "--to", "production", "--version", "v7", "--yes"}, `no release v7 of api is known (known: v1, v2, v3)`},
		{[]string{"lock", "api", "--env", "prodution"}, `did you mean "production"?`},
		{[]string{"backup", "api", "--env", "production", "--set", "uploads"}, `--set uploads: production has no backup sets for api`},
	} {
		code, out, errs := w.run(t, tt.args...)
		if tt.want == "" {
			continue
		}
		if code != exitUsage || !strings.Contains(errs, tt.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q\n%s", strings.Join(tt.args, " "), code, errs, exitUsage, tt.want, out)
		}
	}
	// Nothing ran: no audit entry, nothing deployed.
	if entries := w.audit(t); len(entries) != 0 {
		t.Fatalf("refused commands left audit entries: %+v", entries)
	}
}

// A misspelled command, subcommand or flag exits 2 on one line naming the
// closest one; a command group given a name it lacks never prints its help
// and exits 0 as if it had run.
func TestMisspelledCommandsAndFlagsExitUsageWithTheClosestName(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"histroy", "api"}, `unknown command "histroy" for "ripcord"; did you mean "history"? commands are `},
		{[]string{"plugins", "lst"}, `unknown command "lst" for "ripcord plugins"; did you mean "list"? commands are list, lock, verify`},
		{[]string{"audit", "verfy"}, `unknown command "verfy" for "ripcord audit"; did you mean "verify"?`},
		{[]string{"state", "chek"}, `did you mean "check"?`},
		{[]string{"version", "extra"}, `ripcord version takes no arguments, got "extra"`},
		{[]string{"history", "api", "--evn", "production"}, `unknown flag: --evn; did you mean "--env"? ripcord history takes --config, --env, --json`},
		{[]string{"status", "--jsn"}, `did you mean "--json"?`},
		// promote takes --to, not rollback's --env: the flags it takes say so.
		{[]string{"promote", "api", "--env", "production"}, `unknown flag: --env; ripcord promote takes --config, --force, --full, --override, --reason, --timeout, --to, --version`},
	} {
		code, out, errs := ripcord(t, tt.args...)
		if code != exitUsage || !strings.Contains(errs, tt.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", strings.Join(tt.args, " "), code, errs, exitUsage, tt.want)
		}
		if strings.Contains(errs, `\t`) || out != "" {
			t.Errorf("%s: stdout %q, stderr %q; want the error alone, unescaped", strings.Join(tt.args, " "), out, errs)
		}
	}
	// A group with nothing after it still shows its commands.
	if code, out, _ := ripcord(t, "plugins"); code != exitOK || !strings.Contains(out, "Available Commands") {
		t.Fatalf("plugins alone: exit %d\n%s", code, out)
	}
}

// Checking a command's names never creates the project's state: a release
// asked for where no state exists is refused naming the missing file, and
// a misspelled environment is a usage error with or without state.
func TestATypoNeverCreatesState(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ripcord.yaml")
	body := "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: production\n    target: { provider: local, root: envs/production, run: \"./api\", health: \"tcp://127.0.0.1:1\" }\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, ".ripcord", "state.db")
	code, _, errs := ripcord(t, "rollback", "api", "--env", "production", "--to", "v9.9.9", "--yes", "-c", cfg)
	if code != exitFailed || !strings.Contains(errs, "no state file at "+state) {
		t.Errorf("rollback --to with no state: exit %d, stderr %q; want %d naming %s", code, errs, exitFailed, state)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Fatalf("checking a rollback's release created %s (stat: %v)", state, err)
	}
	for _, args := range [][]string{
		{"history", "api", "--env", "prod"},
		{"rollback", "api", "--env", "prod", "--to", "v1", "--yes"},
	} {
		code, _, errs := ripcord(t, append(args, "-c", cfg)...)
		if code != exitUsage || !strings.Contains(errs, `did you mean "production"?`) {
			t.Errorf("%s with no state: exit %d, stderr %q; want %d and the closest environment", strings.Join(args, " "), code, errs, exitUsage)
		}
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Fatalf("a refused command created %s (stat: %v)", state, err)
	}
}
