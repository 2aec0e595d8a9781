package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// noEnv is an environment with nothing set.
func noEnv(string) (string, bool) { return "", false }

func envOf(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func opts() Options { return Options{Providers: BuiltinProviders, LookupEnv: noEnv} }

func TestParseReportsBrokenConfigsAtTheirPosition(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{
			name: "wrong type for a string",
			yaml: "project: [shop]\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n",
			want: "ripcord.yaml:1:10: project: expected a string, got a list",
		},
		{
			name: "wrong type for a number",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    spike: {min_events: five}\n",
			want: `ripcord.yaml:7:25: environments[0].spike.min_events: expected a whole number, got "five"`,
		},
		{
			name: "mapping where a list belongs",
			yaml: "project: shop\nservices:\n  name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n",
			want: "ripcord.yaml:3:3: services: expected a list, got a mapping",
		},
		{
			name: "unknown key at top level",
			yaml: "project: shop\nservics:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n",
			want: "ripcord.yaml:1:1: missing required key \"services\"\n" +
				`ripcord.yaml:2:1: unknown key "servics" at top level; did you mean "services"? valid keys: project, services, environments, plugins, store, notify, deadlines, bastion`,
		},
		{
			name: "a deadline of zero",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\ndeadlines:\n  deploy: 0s\n  stall: 100ms\n",
			want: "ripcord.yaml:8:11: deadlines.deploy must be longer than zero\n" +
				"ripcord.yaml:9:10: deadlines.stall must be at least 1s: a quiet stream is normal for a moment",
		},
		{
			name: "unknown key in an environment",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n  - name: production\n    targt: {provider: local}\n",
			want: `ripcord.yaml:8:5: unknown key "targt" in environments[1]; did you mean "target"? valid keys: name, from, target, errors, backups, services, gates, rollout, rollback, production, confirm, auto, spike`,
		},
		{
			name: "unknown key three levels down",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    rollback:\n      atuo: off\n",
			want: `ripcord.yaml:8:7: unknown key "atuo" in environments[0].rollback; did you mean "auto"? valid keys: auto, action`,
		},
		{
			name: "unknown key with no close match",
			yaml: "project: shop\nservices:\n  - name: api\n    flavour: mint\nenvironments:\n  - name: staging\n    target: {provider: local}\n",
			want: `ripcord.yaml:4:5: unknown key "flavour" in services[0]; valid keys: name, pipeline, migrations, branches`,
		},
		{
			name: "cycle in from",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    from: production\n    target: {provider: local}\n  - name: production\n    from: staging\n    target: {provider: local}\n",
			want: "ripcord.yaml:6:11: environments[0].from: promotion order has a cycle: staging -> production -> staging",
		},
		{
			name: "from names no environment",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n  - name: production\n    from: stagin\n    target: {provider: local}\n",
			want: `ripcord.yaml:8:11: environments[1].from: no environment is named "stagin"; did you mean "staging"?`,
		},
		{
			name: "unknown provider",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: lcal}\n",
			want: `ripcord.yaml:6:24: environments[0].target: unknown target provider "lcal"; did you mean "local"? known target providers: local, ssh`,
		},
		{
			name: "provider of the wrong kind",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    errors:\n      provider: restic\n",
			want: `ripcord.yaml:8:17: environments[0].errors: provider "restic" is a backup provider, not an errors provider`,
		},
		{
			name: "bad duration",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    backups:\n      - {name: db, provider: dir, every: soon}\n",
			want: `ripcord.yaml:8:42: environments[0].backups[0].every: expected a duration like 24h or 5m, got "soon"`,
		},
		{
			name: "duration without a unit",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    spike: {window: 30}\n",
			want: `ripcord.yaml:7:21: environments[0].spike.window: expected a duration like 24h or 5m, got "30" (add a unit: 30h, 30m or 30s)`,
		},
		{
			name: "missing secret variable",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    backups:\n      - name: db\n        provider: restic\n        password: ${DB_PASSWORD}\n",
			want: "ripcord.yaml:10:19: environments[0].backups[0].password: environment variable DB_PASSWORD is not set",
		},
		{
			name: "tab used for indentation",
			yaml: "project: shop\nservices:\n\t- name: api\n",
			want: "ripcord.yaml:3:1: tab used for indentation; YAML indents with spaces only, so replace the tab with spaces",
		},
		{
			name: "tab after spaces",
			yaml: "project: shop\nservices:\n  - name: api\n  \tpipeline: {provider: exec}\n",
			want: "ripcord.yaml:4:3: tab used for indentation; YAML indents with spaces only, so replace the tab with spaces",
		},
		{
			name: "empty file",
			yaml: " \n\n\t\n",
			want: "ripcord.yaml:1:1: file is empty; expected a mapping with project, services and environments",
		},
		{
			name: "only comments",
			yaml: "# nothing yet\n",
			want: "ripcord.yaml:1:1: file is empty; expected a mapping with project, services and environments",
		},
		{
			name: "invalid UTF-8",
			yaml: "project: shop\nservices:\n  - name: caf\xe9\n",
			want: "ripcord.yaml:3:14: invalid UTF-8 (byte 0xe9); save the file as UTF-8",
		},
		{
			name: "duplicate environment names",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n  - name: staging\n    target: {provider: local}\n",
			want: `ripcord.yaml:7:11: duplicate environment name "staging" (first at ripcord.yaml:5:11)`,
		},
		{
			name: "duplicate backup names in one environment",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    backups:\n      - {name: db, provider: dir}\n      - {name: db, provider: restic}\n",
			want: `ripcord.yaml:9:16: duplicate backup name "db" in environments[0] (first at ripcord.yaml:8:16)`,
		},
		{
			name: "duplicate key",
			yaml: "project: shop\nproject: shop2\n",
			want: `ripcord.yaml:2:1: invalid YAML: mapping key "project" already defined at line 1, column 1`,
		},
		{
			name: "rollout step with two kinds",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    rollout:\n      - {weight: 10, pause: judgment}\n",
			want: "ripcord.yaml:8:9: environments[0].rollout[0] sets weight and pause; a step is exactly one of weight, analysis or pause",
		},
		{
			name: "rollout weight out of range",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    rollout:\n      - weight: 150\n",
			want: "ripcord.yaml:8:17: environments[0].rollout[0].weight must be between 0 and 100, got 150",
		},
		{
			name: "decreasing weights",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    rollout:\n      - weight: 50\n      - pause: 10m\n      - weight: 25\n",
			want: "ripcord.yaml:10:17: environments[0].rollout[2].weight 25 is less than 50 at environments[0].rollout[0]; weights never decrease",
		},
		{
			name: "pause neither judgment nor a duration",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    rollout:\n      - pause: forever\n",
			want: `ripcord.yaml:8:16: environments[0].rollout[0].pause: expected judgment or a duration like 10m, got "forever"`,
		},
		{
			name: "unknown gate",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    gates: [pipeline, lokc]\n",
			want: `ripcord.yaml:7:23: environments[0].gates[1]: unknown gate "lokc"; did you mean "lock"? gates are pipeline, soak DURATION, errors, backups, migrations, branch, lock`,
		},
		{
			name: "soak without a duration",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    gates:\n      - soak\n",
			want: `ripcord.yaml:8:9: environments[0].gates[0]: soak needs one duration, like "soak 5m"`,
		},
		{
			name: "errors gate without an errors provider",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    gates: [errors]\n",
			want: `ripcord.yaml:7:13: environments[0].gates[0]: gate "errors" needs an errors provider in environments[0]`,
		},
		{
			name: "bad enum",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    confirm: type_name\n",
			want: `ripcord.yaml:7:14: environments[0].confirm: expected one of y, type-name, got "type_name"; did you mean "type-name"?`,
		},
		{
			name: "alpha out of range",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    spike:\n      alpha: 0.9\n",
			want: "ripcord.yaml:8:14: environments[0].spike.alpha must be more than 0 and at most 0.5, got 0.9",
		},
		{
			name: "tolerance not above 1",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    spike:\n      tolerance: 1\n",
			want: "ripcord.yaml:8:18: environments[0].spike.tolerance must be more than 1 and at most 100 (a rate ratio: 1.5 means HEALTHY rules out 1.5× the baseline's errors), got 1",
		},
		{
			name: "unknown on_inconclusive",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    spike:\n      on_inconclusive: wiat\n",
			want: `ripcord.yaml:8:24: environments[0].spike.on_inconclusive: expected one of wait, pass, fail, got "wiat"; did you mean "wait"?`,
		},
		{
			name: "warn not below critical",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    backups:\n      - {name: db, provider: dir, warn: 3}\n",
			want: "ripcord.yaml:8:41: environments[0].backups[0]: warn (3) must be less than critical (2)",
		},
		{
			name: "missing required key",
			yaml: "project: shop\nservices:\n  - pipeline: {provider: exec}\nenvironments:\n  - name: staging\n    target: {provider: local}\n",
			want: `ripcord.yaml:3:5: services[0] is missing required key "name"`,
		},
		{
			name: "provider without provider key",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {root: /srv}\n",
			want: `ripcord.yaml:6:13: environments[0].target is missing required key "provider"`,
		},
		{
			name: "top level is a list",
			yaml: "- project: shop\n",
			want: "ripcord.yaml:1:1: expected a mapping with project, services and environments at top level, got a list",
		},
		{
			name: "a store this build does not have",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\nstore:\n  driver: postgres\n",
			want: `ripcord.yaml:8:11: store.driver: expected one of sqlite, got "postgres"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("ripcord.yaml", []byte(tt.yaml), opts())
			if err == nil {
				t.Fatalf("Parse accepted a broken config: %+v", f)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error mismatch\n got: %s\nwant: %s", got, tt.want)
			}
			var single *Error
			var list ErrorList
			if !errors.As(err, &single) && !errors.As(err, &list) {
				t.Errorf("error is %T, want *Error or ErrorList", err)
			}
		})
	}
}

func TestLoadRefusesLargeFilesWithoutParsing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ripcord.yaml")
	// Ten megabytes of something that is not YAML at all: parsing it would
	// give a syntax error, so the size message proves nothing was parsed.
	if err := os.WriteFile(path, []byte(strings.Repeat("}{", 5<<20)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, opts())
	want := path + ":1:1: file is larger than 1 MiB (10485760 bytes); is this the right file?"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestErrorListIsSortedAndCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n")
	for i := range 12 {
		fmt.Fprintf(&b, "    bogus%02d: 1\n", i)
	}
	_, err := Parse("ripcord.yaml", []byte(b.String()), opts())
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("got %T %v, want ErrorList", err, err)
	}
	if len(list) != maxReported+1 {
		t.Fatalf("got %d entries, want %d errors and a summary", len(list), maxReported)
	}
	for i := range maxReported {
		if list[i].Pos.Line != 7+i {
			t.Errorf("entry %d at line %d, want %d (sorted by position)", i, list[i].Pos.Line, 7+i)
		}
	}
	if got := list[maxReported].Error(); got != "ripcord.yaml: 2 more errors not shown" {
		t.Errorf("summary = %q", got)
	}
	if n := strings.Count(err.Error(), "\n"); n != maxReported {
		t.Errorf("Error() has %d lines, want one per entry", n+1)
	}
}

const secretConfig = `project: shop
services:
  - name: api
environments:
  - name: staging
    target: {provider: local}
    backups:
      - name: uploads
        provider: restic
        repository: ${RESTIC_REPOSITORY:-/srv/restic}
        password: ${RESTIC_PASSWORD}
        options: {token: "Bearer ${API_TOKEN}"}
    errors:
      provider: sentry
      dsn: https://ripcord:${DB_PASSWORD}@sentry.example/1
`

func TestSecretsExpandAndNeverPrint(t *testing.T) {
	env := envOf(map[string]string{
		"RESTIC_PASSWORD": "hunter2-correct-horse",
		"API_TOKEN":       "tok_51HxYzSecret",
		"DB_PASSWORD":     "pg-s3cr3t-pw",
	})
	f, err := Parse("ripcord.yaml", []byte(secretConfig), Options{Providers: BuiltinProviders, LookupEnv: env})
	if err != nil {
		t.Fatal(err)
	}
	b := f.Environments[0].Backups[0]
	if got := b.Provider.Settings["password"]; got != "hunter2-correct-horse" {
		t.Errorf("password setting = %v, want the expanded value", got)
	}
	if got := b.Provider.Settings["repository"]; got != "/srv/restic" {
		t.Errorf("repository = %v, want the ${VAR:-default} default", got)
	}
	if got := b.Provider.Settings["options"].(map[string]any)["token"]; got != "Bearer tok_51HxYzSecret" {
		t.Errorf("nested token = %v", got)
	}
	dsn, _ := f.Environments[0].Errors.Settings["dsn"].(string)
	if dsn != "https://ripcord:pg-s3cr3t-pw@sentry.example/1" {
		t.Errorf("dsn = %q", dsn)
	}
	secrets := []string{"hunter2-correct-horse", "tok_51HxYzSecret", "pg-s3cr3t-pw"}
	if got := f.Secrets(); len(got) != 3 {
		t.Errorf("Secrets() = %d values, want 3 (defaults are not secrets)", len(got))
	}
	printed := []string{
		fmt.Sprintf("%+v", f), fmt.Sprintf("%v", *f), fmt.Sprintf("%#v", f), f.String(),
		fmt.Sprintf("%+v", b.Provider), fmt.Sprintf("%v", &b.Provider),
		f.Redact("dsn=" + dsn + " pw=" + b.Provider.Settings["password"].(string)),
	}
	for _, out := range printed {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("secret %q printed in %q", s, out)
			}
		}
	}
	if !strings.Contains(printed[0], "[redacted]") {
		t.Errorf("%%+v output shows no [redacted] marker: %s", printed[0])
	}
}

func TestSecretsNeverAppearInErrors(t *testing.T) {
	env := envOf(map[string]string{
		"EVERY":    "sooner-than-you-think",
		"CONFIRM":  "confirm-secret-value",
		"ENV_NAME": "envname-secret",
		"KEEP":     "keep-secret",
	})
	yaml := `project: shop
services:
  - name: api
environments:
  - name: ${ENV_NAME}
    target: {provider: local}
    confirm: ${CONFIRM}
    spike: {min_events: "${KEEP}"}
    backups:
      - {name: db, provider: dir, every: "${EVERY}"}
  - name: ${ENV_NAME}
    target: {provider: local}
`
	_, err := Parse("ripcord.yaml", []byte(yaml), Options{Providers: BuiltinProviders, LookupEnv: env})
	if err == nil {
		t.Fatal("Parse accepted a config with a bad duration and enum")
	}
	for _, s := range []string{"sooner-than-you-think", "confirm-secret-value", "keep-secret"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("secret %q in error:\n%s", s, err)
		}
	}
	want := []string{
		`ripcord.yaml:7:14: environments[0].confirm: expected one of y, type-name, got "${CONFIRM}"`,
		`ripcord.yaml:8:25: environments[0].spike.min_events: expected a whole number, got "${KEEP}"`,
		`ripcord.yaml:10:42: environments[0].backups[0].every: expected a duration like 24h or 5m, got "${EVERY}"`,
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}

	// Validation messages quote decoded values; the duplicate name came
	// from the environment and must be redacted.
	yaml = strings.NewReplacer("    confirm: ${CONFIRM}\n", "", "    spike: {min_events: \"${KEEP}\"}\n", "", `every: "${EVERY}"`, "every: 1d").Replace(yaml)
	_, err = Parse("ripcord.yaml", []byte(yaml), Options{Providers: BuiltinProviders, LookupEnv: env})
	wantDup := `ripcord.yaml:9:11: duplicate environment name "[redacted]" (first at ripcord.yaml:5:11)`
	if err == nil || err.Error() != wantDup {
		t.Errorf("got %v\nwant %s", err, wantDup)
	}
}

func TestEnvReferenceSyntax(t *testing.T) {
	x := newExpander(envOf(map[string]string{"A": "alpha", "EMPTY": ""}))
	tests := []struct{ in, want, problem string }{
		{"plain", "plain", ""},
		{"${A}", "alpha", ""},
		{"x-${A}-y", "x-alpha-y", ""},
		{"$${A}", "${A}", ""},
		{"echo $HOME $", "echo $HOME $", ""},
		{"${MISSING:-fallback}", "fallback", ""},
		{"${EMPTY:-fallback}", "fallback", ""},
		{"${EMPTY}", "", ""},
		{"${MISSING}", "", "environment variable MISSING is not set"},
		{"${A", "", "unterminated ${ reference; write ${NAME}, ${NAME:-default}, or $${ for a literal ${"},
		{"${1A}", "", "invalid reference ${1A}: a variable name is letters, digits and _, not starting with a digit; write $${ for a literal ${"},
	}
	for _, tt := range tests {
		got, _, problems := x.expand(tt.in)
		if tt.problem != "" {
			if len(problems) != 1 || problems[0] != tt.problem {
				t.Errorf("expand(%q) problems = %q, want %q", tt.in, problems, tt.problem)
			}
			continue
		}
		if len(problems) > 0 || got != tt.want {
			t.Errorf("expand(%q) = %q, %q; want %q", tt.in, got, problems, tt.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	yaml := `project: shop
services:
  - name: api
environments:
  - name: staging
    target: {provider: local}
    backups:
      - {name: db, provider: dir}
  - name: prod
    from: staging
    production: true
    target: {provider: local}
    spike: {alpha: 0.05}
  - name: live
    from: prod
    target: {provider: local}
`
	f, err := Parse("/srv/shop/ripcord.yaml", []byte(yaml), opts())
	if err != nil {
		t.Fatal(err)
	}
	if f.Store.Driver != "sqlite" || f.Store.Path != "/srv/shop/.ripcord/state.db" {
		t.Errorf("store = %+v", f.Store)
	}
	if !*f.Notify.Bell || !*f.Notify.Desktop {
		t.Errorf("notify = bell %v desktop %v, want both on", *f.Notify.Bell, *f.Notify.Desktop)
	}
	if got := f.Services[0].Branches; len(got) != 1 || got[0] != "main" {
		t.Errorf("branches = %v", got)
	}
	staging, prod := f.Environments[0], f.Environments[1]
	b := staging.Backups[0]
	if b.Every.D() != 24*time.Hour || b.Warn != 1.5 || b.Critical != 2 {
		t.Errorf("backup policy = every %v warn %v critical %v", b.Every, b.Warn, b.Critical)
	}
	if s := staging.Spike; s.Alpha != 0.01 || s.MinEvents != 5 || s.Window.D() != 30*time.Minute || s.Tolerance != 1.5 || s.OnInconclusive != "wait" {
		t.Errorf("spike = %+v", s)
	}
	if prod.Spike.Alpha != 0.05 {
		t.Errorf("written alpha replaced by default: %v", prod.Spike.Alpha)
	}
	r := staging.Rollback
	if r.Auto != "off" || r.Action != "rollback" {
		t.Errorf("rollback = auto %q action %q", r.Auto, r.Action)
	}
	// Production is what the config says, never a name: "prod" marked
	// production confirms by typing, "live" (not marked) with y.
	if staging.Confirm != "y" || prod.Confirm != "type-name" || f.Environments[2].Confirm != "y" {
		t.Errorf("confirm = staging %q prod %q live %q, want y, type-name, y", staging.Confirm, prod.Confirm, f.Environments[2].Confirm)
	}
}

func TestZeroIsNotTakenForUnset(t *testing.T) {
	yaml := "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    spike: {min_events: 0}\n"
	_, err := Parse("ripcord.yaml", []byte(yaml), opts())
	want := "ripcord.yaml:7:25: environments[0].spike.min_events must be at least 1, got 0"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestRelativePathsResolveAgainstTheFile(t *testing.T) {
	dir := t.TempDir()
	yaml := `project: shop
services:
  - name: api
    pipeline: {provider: exec, stages: [{name: build, run: "true"}]}
    migrations: {dir: db/migrations}
environments:
  - name: staging
    target: {provider: kube, root: relative/stays}
plugins:
  - {name: kube, path: ~/plugins/ripcord-provider-kube}
  - {name: other, path: bin/other}
  - {name: abs, path: /opt/abs}
store:
  path: state/ripcord.db
`
	path := filepath.Join(dir, "conf", "ripcord.yaml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	o := opts()
	o.LookupEnv = envOf(map[string]string{"HOME": "/home/rel"})
	f, err := Load(path, o)
	if err != nil {
		t.Fatal(err)
	}
	confDir := filepath.Join(dir, "conf")
	checks := map[string][2]string{
		"store.path":     {f.Store.Path, filepath.Join(confDir, "state/ripcord.db")},
		"migrations.dir": {f.Services[0].Migrations.Dir, filepath.Join(confDir, "db/migrations")},
		"plugin ~/":      {f.Plugins[0].Path, "/home/rel/plugins/ripcord-provider-kube"},
		"plugin rel":     {f.Plugins[1].Path, filepath.Join(confDir, "bin/other")},
		"plugin abs":     {f.Plugins[2].Path, "/opt/abs"},
		"provider root":  {f.Environments[0].Target.Settings["root"].(string), "relative/stays"},
		"Dir":            {f.Dir, confDir},
	}
	for what, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", what, c[0], c[1])
		}
	}
}

func TestProviderSettingsKeepTypesAndPositions(t *testing.T) {
	yaml := `project: shop
services:
  - name: api
    pipeline:
      provider: exec
      parallel: 4
      ratio: 0.5
      verbose: true
      stages:
        - name: build
          run: make build
environments:
  - name: staging
    target: {provider: local}
`
	f, err := Parse("ripcord.yaml", []byte(yaml), opts())
	if err != nil {
		t.Fatal(err)
	}
	p := f.Services[0].Pipeline
	if p.Settings["parallel"] != int64(4) || p.Settings["ratio"] != 0.5 || p.Settings["verbose"] != true {
		t.Errorf("settings = %#v", p.Settings)
	}
	stage := p.Settings["stages"].([]any)[0].(map[string]any)
	if stage["run"] != "make build" {
		t.Errorf("stages.0.run = %v", stage["run"])
	}
	if _, err := json.Marshal(p.Settings); err != nil {
		t.Errorf("settings are not JSON-able: %v", err)
	}
	if got := p.SettingPos["stages.0.run"].String(); got != "ripcord.yaml:11:16" {
		t.Errorf("stages.0.run at %s", got)
	}
	if _, ok := p.Settings["provider"]; ok {
		t.Error("provider name leaked into settings")
	}
	if p.Name != "exec" || p.Pos.String() != "ripcord.yaml:5:7" {
		t.Errorf("provider %q at %s", p.Name, p.Pos)
	}
}

func TestPluginsServeAnyKind(t *testing.T) {
	yaml := `project: shop
services:
  - name: api
    pipeline: {provider: kube}
environments:
  - name: staging
    target: {provider: kube}
    errors: {provider: kube}
    backups: [{name: db, provider: kube}]
plugins:
  - name: kube
`
	if _, err := Parse("ripcord.yaml", []byte(yaml), opts()); err != nil {
		t.Fatal(err)
	}
}

func TestDurationsAcceptDays(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"1d": 24 * time.Hour, "1d12h": 36 * time.Hour, "1.5d": 36 * time.Hour, "90s": 90 * time.Second, "5m": 5 * time.Minute,
	} {
		got, err := ParseDuration(in)
		if err != nil || got.D() != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got.D(), err, want)
		}
	}
	for _, bad := range []string{"", "5", "-5m", "1y", "d", "5m ", "99999999999999d"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
}

// The gates reach the engine as written, with the config's durations:
// "soak 2d" is two days, as everywhere else in ripcord.yaml.
func TestGatesBecomeTheEnginesSpecs(t *testing.T) {
	f, err := Load(filepath.Join("..", "..", "docs", "ripcord.example.yaml"), Options{Providers: BuiltinProviders, LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	want := []core.GateSpec{{Name: "pipeline"}, {Name: "soak", Soak: 5 * time.Minute}, {Name: "errors"}, {Name: "backups"}, {Name: "migrations"}, {Name: "branch"}, {Name: "lock"}}
	if got := f.Environments[1].GateSpecs; !slices.Equal(got, want) {
		t.Fatalf("production gates = %+v, want %+v", got, want)
	}
	yaml := "project: shop\nservices: [{name: api}]\nenvironments:\n  - name: prod\n    target: {provider: local}\n    gates: [soak 2d, lock]\n"
	f, err = Parse("ripcord.yaml", []byte(yaml), Options{Providers: BuiltinProviders, LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	want = []core.GateSpec{{Name: "soak", Soak: 48 * time.Hour}, {Name: "lock"}}
	if got := f.Environments[0].GateSpecs; !slices.Equal(got, want) {
		t.Fatalf("gates = %+v, want %+v", got, want)
	}
}

func TestExampleConfigLoads(t *testing.T) {
	f, err := Load(filepath.Join("..", "..", "docs", "ripcord.example.yaml"), Options{Providers: BuiltinProviders, LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if f.Project != "shop" || len(f.Services) != 2 || len(f.Environments) != 2 {
		t.Fatalf("example = project %q, %d services, %d environments", f.Project, len(f.Services), len(f.Environments))
	}
	prod := f.Environments[1]
	if prod.From != "staging" || prod.Confirm != "type-name" || len(prod.Rollout) != 5 {
		t.Errorf("production = from %q confirm %q %d steps", prod.From, prod.Confirm, len(prod.Rollout))
	}
	if got := prod.Placement("api").Backups[0].Provider.Settings["password"]; got != "change-me" {
		t.Errorf("restic password without env = %v, want the default", got)
	}
	if !f.Environments[0].Auto {
		t.Error("staging is not auto")
	}
}

func TestSchemaIsJSONListingTopLevelKeys(t *testing.T) {
	out, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Schema     string                     `json:"$schema"`
		Properties map[string]json.RawMessage `json:"properties"`
		Required   []string                   `json:"required"`
		Additional bool                       `json:"additionalProperties"`
		Defs       map[string]struct {
			Additional bool `json:"additionalProperties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	if s.Schema != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %q", s.Schema)
	}
	for _, k := range []string{"project", "services", "environments", "plugins", "store", "notify"} {
		if _, ok := s.Properties[k]; !ok {
			t.Errorf("top-level key %q missing", k)
		}
	}
	if strings.Join(s.Required, ",") != "project,services,environments" || s.Additional {
		t.Errorf("required %v, additionalProperties %v", s.Required, s.Additional)
	}
	if !s.Defs["Provider"].Additional || !s.Defs["Backup"].Additional || s.Defs["Environment"].Additional {
		t.Errorf("only providers may carry extra keys: %+v", s.Defs)
	}
}

// migrations.dir is accepted where a pipeline reads it (exec, and the CI
// sources in the clone it is in) and refused, at its line, where nothing
// would.
func TestMigrationsAreAcceptedOnlyWhereAPipelineReadsThem(t *testing.T) {
	for _, c := range []struct{ pipeline, want string }{
		{"{provider: exec, stages: [{name: build, run: \"true\"}]}", ""},
		{"{provider: github-actions, repository: shop/api, workflow: ci.yml}", ""},
		{"{provider: gitlab-ci, project: shop/api, artifact: {job: build, path: dist/api}}", ""},
		{"{provider: kube}", "ripcord.yaml:4:17: services[0].migrations is read by the exec, github-actions and gitlab-ci pipelines"},
	} {
		yaml := "project: shop\nservices:\n  - name: api\n    migrations: {dir: db/migrations}\n    pipeline: " + c.pipeline + "\nenvironments:\n  - name: staging\n    target: {provider: local}\n"
		_, err := Parse("ripcord.yaml", []byte(yaml), opts())
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("migrations with pipeline %s: %v; want %q", c.pipeline, err, c.want)
		}
	}
}
