package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/config"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

// newServicesWorld is a project with two services, api and web, each with
// its own local target in each environment and releases v1 and v2 of its
// own (web's artifacts are not api's).
func newServicesWorld(t *testing.T) *cliWorld {
	t.Helper()
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	target := func(svc, env string) string {
		return fmt.Sprintf(`        target: { provider: local, root: envs/%s-%s, run: "./artifact", health: "http://127.0.0.1:{{.Port}}/healthz" }
`, svc, env)
	}
	body := `project: shop
services:
  - name: api
  - name: web
environments:
  - name: staging
    services:
      - name: api
` + target("api", "staging") + `      - name: web
` + target("web", "staging") + `  - name: production
    from: staging
    gates: [lock]
    services:
      - name: api
` + target("api", "production") + `      - name: web
` + target("web", "production")
	cfg := filepath.Join(dir, "ripcord.yaml")
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, ".ripcord", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, svc := range []string{"api", "web"} {
		store := filepath.Join(dir, ".ripcord", "pipelines", svc, "artifacts")
		if err := os.MkdirAll(store, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"v1", "v2"} {
			script := fmt.Sprintf("#!/bin/sh\n# %s\nRIPCORD_TEST_SERVICE=%s exec %s \"$@\"\n", svc, v, self)
			sum := sha256.Sum256([]byte(script))
			digest := hex.EncodeToString(sum[:])
			if err := os.WriteFile(filepath.Join(store, digest), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := st.PutRelease(ctx, core.Release{Service: svc, Version: v, Branch: "main", ArtifactDigest: "sha256:" + digest, BuiltAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	stopWorldAtEnd(t, cfg)
	return &cliWorld{dir: dir, cfg: cfg}
}

// runs is what a service's target in an environment has made current, or
// "" when nothing was ever deployed there.
func (w *cliWorld) runs(t *testing.T, svc, env string) string {
	t.Helper()
	link, err := os.Readlink(filepath.Join(w.dir, "envs", svc+"-"+env, "current"))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Base(link)
}

// Each service is promoted and rolled back on its own target: promoting
// web never touches api's, and rolling web back leaves api where it is.
func TestTwoServicesPromoteAndRollBackIndependently(t *testing.T) {
	t.Setenv("RIPCORD_ACTOR", "ana")
	w := newServicesWorld(t)
	must := func(args ...string) string {
		t.Helper()
		code, out, errs := w.run(t, args...)
		if code != exitOK {
			t.Fatalf("%s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
		}
		return out
	}
	if code, out, errs := w.run(t, "validate"); code != exitOK || !strings.Contains(out, "2 services") {
		t.Fatalf("validate: exit %d\n%s%s", code, out, errs)
	}
	must("promote", "web", "--to", "staging", "--version", "v1", "--yes")
	if got, api := w.runs(t, "web", "staging"), w.runs(t, "api", "staging"); got != "v1" || api != "" {
		t.Fatalf("after promoting web v1 to staging: web runs %q, api runs %q; want v1 and nothing", got, api)
	}
	must("promote", "api", "--to", "staging", "--version", "v2", "--yes")
	must("promote", "web", "--to", "staging", "--version", "v2", "--yes")
	must("promote", "api", "--to", "production", "--version", "v2", "--yes")
	must("promote", "web", "--to", "production", "--version", "v1", "--yes")
	must("promote", "web", "--to", "production", "--version", "v2", "--yes")
	if api, web := w.runs(t, "api", "production"), w.runs(t, "web", "production"); api != "v2" || web != "v2" {
		t.Fatalf("production runs api %q web %q; want v2 and v2", api, web)
	}

	must("rollback", "web", "--env", "production", "--yes", "--reason", "web only")
	if api, web := w.runs(t, "api", "production"), w.runs(t, "web", "production"); api != "v2" || web != "v1" {
		t.Fatalf("after rolling back web: production runs api %q web %q; want api v2 untouched and web v1", api, web)
	}

	out := must("history", "api", "--env", "production", "--json")
	var deps []core.Deployment
	if err := json.Unmarshal([]byte(out), &deps); err != nil {
		t.Fatalf("history --json: %v\n%s", err, out)
	}
	for _, d := range deps {
		if d.Ref != (core.Ref{Service: "api", Env: "production"}) || d.Version != "v2" {
			t.Fatalf("api's production history holds %+v; web's rollouts must not appear there", d)
		}
	}
	var rolledBack bool
	for _, e := range w.audit(t) {
		if e.Action == "rollback" {
			rolledBack = true
			if e.Ref != (core.Ref{Service: "web", Env: "production"}) || e.From != "v2" || e.To != "v1" {
				t.Fatalf("rollback audited as %+v; want web/production v2 → v1", e)
			}
		}
	}
	if !rolledBack {
		t.Fatal("the rollback is not in the audit log")
	}
}

// Each provider process's log lines are published for what it serves, so
// the console shows them in those environments' logs: a target for its
// service and environment, a pipeline for its service, a set shared by an
// environment's services for the environment.
func TestProviderLogLinesCarryWhatTheyServe(t *testing.T) {
	body := `project: shop
services:
  - name: api
    pipeline: { provider: exec, stages: [{name: build, steps: [{name: b, run: "true"}]}] }
  - name: web
environments:
  - name: production
    backups:
      - { name: orders, provider: dir, path: "*.sql" }
    services:
      - name: api
        target: { provider: local, root: envs/api, run: "./a", health: "tcp://127.0.0.1:1" }
      - name: web
        target: { provider: local, root: envs/web, run: "./w", health: "tcp://127.0.0.1:1" }
        backups:
          - { name: media, provider: dir, path: "*.tar" }
`
	cfg := filepath.Join(t.TempDir(), "ripcord.yaml")
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := config.Load(cfg, config.Options{Providers: config.BuiltinProviders})
	if err != nil {
		t.Fatal(err)
	}
	got := logRefs(usedProviders(f))
	want := map[string]core.Ref{
		"plugin/exec@api":                 {Service: "api"},
		"plugin/local@api.production":     {Service: "api", Env: "production"},
		"plugin/local@web.production":     {Service: "web", Env: "production"},
		"plugin/dir@production.orders":    {Env: "production"},
		"plugin/dir@web.production.media": {Service: "web", Env: "production"},
	}
	for source, ref := range want {
		if got[source] != ref {
			t.Errorf("lines of %s are published for %+v, want %+v (all: %v)", source, got[source], ref, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("log sources = %v, want %v", got, want)
	}
}
