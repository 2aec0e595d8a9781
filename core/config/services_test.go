package config

import (
	"strings"
	"testing"
)

// Every service runs in every environment on a target of its own; the
// environment-level shorthand belongs to a project with one service.
func TestEachServiceIsPlacedInEachEnvironment(t *testing.T) {
	const head = "project: shop\nservices:\n  - name: api\n  - name: web\nenvironments:\n  - name: staging\n"
	tests := []struct {
		name, yaml, want string
	}{
		{
			name: "environment-level target with two services",
			yaml: head + "    target: {provider: local}\n",
			want: "ripcord.yaml:7:13: environments[0].target: the project has 2 services (api, web), so each needs its own target: write it under environments[0].services, one block per service",
		},
		{
			name: "a service without a block",
			yaml: head + "    services:\n      - name: api\n        target: {provider: local}\n",
			want: `ripcord.yaml:8:7: environments[0]: service "web" has no block here; every service runs in every environment, so add - name: web with its target under environments[0].services`,
		},
		{
			name: "a block naming no service",
			yaml: head + "    services:\n      - name: api\n        target: {provider: local}\n      - name: wbe\n        target: {provider: local}\n",
			want: `ripcord.yaml:8:7: environments[0]: service "web" has no block here; every service runs in every environment, so add - name: web with its target under environments[0].services` + "\n" +
				`ripcord.yaml:10:15: environments[0].services[1]: no service is named "wbe"; did you mean "web"? services are api, web`,
		},
		{
			name: "a block without a target",
			yaml: head + "    services:\n      - name: api\n        target: {provider: local}\n      - name: web\n        errors: {provider: sentry-ingest}\n",
			want: `ripcord.yaml:10:9: environments[0].services[1]: service "web" needs a target in environments[0]`,
		},
		{
			name: "both shorthand and blocks",
			yaml: "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    services:\n      - name: api\n        target: {provider: local}\n",
			want: "ripcord.yaml:6:13: environments[0].target: target is written both here and under environments[0].services; with services blocks, each service's target goes in its block",
		},
		{
			name: "errors gate needs every service's error source",
			yaml: head + "    gates: [errors]\n    services:\n      - name: api\n        target: {provider: local}\n        errors: {provider: sentry-ingest}\n      - name: web\n        target: {provider: local}\n",
			want: `ripcord.yaml:7:13: environments[0].gates[0]: gate "errors" needs an errors provider in environments[0].services[1] (service web)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("ripcord.yaml", []byte(tt.yaml), opts())
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", f)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error mismatch\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

func TestPlacementsGiveEachServiceItsOwnProviders(t *testing.T) {
	f, err := Parse("ripcord.yaml", []byte(`project: shop
services:
  - name: api
  - name: web
environments:
  - name: production
    gates: [backups]
    services:
      - name: web
        target: {provider: local, root: envs/web}
        backups: [{name: assets, provider: dir, path: "a/*"}]
      - name: api
        target: {provider: local, root: envs/api}
        backups: [{name: db, provider: dir, path: "b/*", every: 1h}]
`), opts())
	if err != nil {
		t.Fatal(err)
	}
	e := f.Environments[0]
	api, web := e.Placement("api"), e.Placement("web")
	if api == nil || web == nil {
		t.Fatalf("placements = %+v", e.Services)
	}
	if api.Target.Settings["root"] != "envs/api" || web.Target.Settings["root"] != "envs/web" {
		t.Fatalf("targets: api %v, web %v", api.Target.Settings, web.Target.Settings)
	}
	if web.Backups[0].Every.D().Hours() != 24 || api.Backups[0].Every.D().Hours() != 1 {
		t.Fatalf("backup defaults not applied per block: %+v %+v", web.Backups[0], api.Backups[0])
	}
	if got := api.Target.Pos.String(); !strings.HasPrefix(got, "ripcord.yaml:13:") {
		t.Fatalf("api's target is located at %s", got)
	}

	// One service: the environment-level blocks are that service's.
	one, err := Parse("ripcord.yaml", []byte("project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n"), opts())
	if err != nil {
		t.Fatal(err)
	}
	if pl := one.Environments[0].Placement("api"); pl == nil || pl.Target != one.Environments[0].Target || pl.Path != "environments[0]" {
		t.Fatalf("shorthand placement = %+v", pl)
	}
}

// Backup sets written on an environment with services blocks belong to
// the environment: every service's backups gate checks them.
func TestEnvironmentBackupsAreSharedByItsServices(t *testing.T) {
	f, err := Parse("ripcord.yaml", []byte(`project: shop
services:
  - name: api
  - name: web
environments:
  - name: production
    gates: [backups]
    backups: [{name: orders, provider: dir, path: "o/*"}]
    services:
      - name: api
        target: {provider: local}
      - name: web
        target: {provider: local}
        backups: [{name: orders, provider: dir, path: "w/*"}]
`), opts())
	if err == nil {
		t.Fatalf("a service's set named like a shared one was accepted: %+v", f)
	}
	if want := `ripcord.yaml:14:26: duplicate backup name "orders" in environments[0].services[1] (first at ripcord.yaml:8:15)`; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error = %v, want %s…", err, want)
	}
	f, err = Parse("ripcord.yaml", []byte(`project: shop
services:
  - name: api
  - name: web
environments:
  - name: production
    gates: [backups]
    backups: [{name: orders, provider: dir, path: "o/*", warn: 1.2}]
    services:
      - name: api
        target: {provider: local}
      - name: web
        target: {provider: local}
`), opts())
	if err != nil {
		t.Fatal(err)
	}
	shared := f.Environments[0].SharedBackups()
	if len(shared) != 1 || shared[0].Critical != 2 || shared[0].Warn != 1.2 {
		t.Fatalf("shared backups = %+v; want orders with its defaults applied", shared)
	}
}

// A secret written into the file is refused with the ${ENV} form to use;
// the message never repeats the secret.
func TestInlineSecretsAreRefused(t *testing.T) {
	const head = "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n"
	tests := []struct{ name, yaml, want string }{
		{
			name: "a password",
			yaml: head + "    target: {provider: local}\n    backups:\n      - {name: db, provider: restic, repository: /r, password: hunter2-horse}\n",
			want: "ripcord.yaml:8:64: environments[0].backups[0].password: a secret written inline; write password: ${PASSWORD} and set PASSWORD in the environment (secrets are only ${ENV} references)",
		},
		{
			name: "a URL with a password",
			yaml: head + "    target: {provider: local}\n    errors: {provider: sentry, dsn: \"https://ripcord:hunter2-horse@sentry.example/1\"}\n",
			want: "ripcord.yaml:7:37: environments[0].errors.dsn: this URL carries a password written inline; write it as https://ripcord:${DSN_PASSWORD}@… and set DSN_PASSWORD in the environment",
		},
		{
			name: "a token in a release's environment",
			yaml: head + "    target:\n      provider: local\n      env: {STRIPE_TOKEN: hunter2-horse}\n",
			want: "ripcord.yaml:8:27: environments[0].target.env.STRIPE_TOKEN: a secret written inline; write STRIPE_TOKEN: ${ENV_STRIPE_TOKEN} and set ENV_STRIPE_TOKEN in the environment (secrets are only ${ENV} references)",
		},
		{
			name: "an ingest key",
			yaml: head + "    target: {provider: local}\n    errors: {provider: sentry-ingest, keys: {\"1\": hunter2-horse}}\n",
			want: "ripcord.yaml:7:51: environments[0].errors.keys.1: a secret written inline; write 1: ${KEYS} and set KEYS in the environment (secrets are only ${ENV} references)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("ripcord.yaml", []byte(tt.yaml), opts())
			if err == nil {
				t.Fatal("Parse accepted a secret written inline")
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error mismatch\n got: %s\nwant: %s", got, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the message repeats the secret: %s", err)
			}
		})
	}
	// References are how secrets are written; a default is the file's own
	// placeholder for a machine without the variable.
	ok := head + "    target: {provider: local, env: {STRIPE_TOKEN: \"${STRIPE_TOKEN}\", DSN: \"http://${KEY:-dev-key}@127.0.0.1:1/1\", DB: \"postgres://u:${DB_PW}@db/x\"}}\n    errors: {provider: sentry-ingest, keys: {\"1\": \"${KEY:-dev-key}\"}}\n    backups:\n      - {name: db, provider: restic, repository: /r, password: \"${RESTIC_PASSWORD:-x}\"}\n"
	if _, err := Parse("ripcord.yaml", []byte(ok), Options{Providers: BuiltinProviders, LookupEnv: envOf(map[string]string{"STRIPE_TOKEN": "t", "DB_PW": "p"})}); err != nil {
		t.Fatal(err)
	}
}

// A misspelled key of a provider's block itself (a backup set's every)
// reads as a setting the provider does not know; the message points at
// the block's key the person meant, not only at the provider's settings.
func TestMisspelledBlockKeyIsSuggested(t *testing.T) {
	const body = "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n    backups:\n      - {name: media, provider: snaps, dir: /m, evrey: 24h}\nplugins:\n  - name: snaps\n"
	f, err := Parse("ripcord.yaml", []byte(body), opts())
	if err != nil {
		t.Fatal(err)
	}
	p := f.Environments[0].Backups[0].Provider
	schema := []byte(`{"type": "object", "additionalProperties": false, "properties": {"dir": {"type": "string"}, "set": {"type": "string"}}}`)
	problems, err := CheckSettings(schema, p.Settings, p.BlockKeys...)
	if err != nil {
		t.Fatal(err)
	}
	want := `unknown setting; did you mean "every" (a key of the block itself)? known settings: dir, set`
	if len(problems) != 1 || problems[0].Path != "evrey" || problems[0].Message != want {
		t.Fatalf("problems = %+v\nwant evrey: %s", problems, want)
	}
	if pos := p.SettingPos["evrey"]; pos.Line != 8 {
		t.Errorf("evrey is located at %v, want line 8", pos)
	}
	// A provider setting close to the misspelling still wins.
	problems, _ = CheckSettings(schema, map[string]any{"dri": "/m"}, p.BlockKeys...)
	if len(problems) != 1 || !strings.Contains(problems[0].Message, `did you mean "dir"?`) {
		t.Fatalf("problems = %+v, want a suggestion of dir", problems)
	}
}
