package main

import (
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
