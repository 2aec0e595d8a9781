package main

import (
	"strings"
	"testing"

	"github.com/ripcordhq/ripcord/core/config"
)

// The migrations gate is told when nothing reads a service's migrations,
// so it says "not checked" rather than "no migrations": exec and the CI
// sources read them only from migrations.dir, an external source sends
// what it reads.
func TestMigrationsUnreadSaysWhy(t *testing.T) {
	for _, c := range []struct {
		svc  config.Service
		want string
	}{
		{config.Service{Name: "api", Pipeline: &config.Provider{Name: "exec"}, Migrations: &config.Migrations{Dir: "db"}}, ""},
		{config.Service{Name: "api", Pipeline: &config.Provider{Name: "exec"}}, "api sets no migrations.dir"},
		{config.Service{Name: "api", Pipeline: &config.Provider{Name: "github-actions"}}, "api sets no migrations.dir"},
		{config.Service{Name: "api", Pipeline: &config.Provider{Name: "github-actions"}, Migrations: &config.Migrations{Dir: "db"}}, ""},
		{config.Service{Name: "api", Pipeline: &config.Provider{Name: "gitlab-ci"}}, "api sets no migrations.dir"},
		{config.Service{Name: "api", Pipeline: &config.Provider{Name: "gitlab-ci"}, Migrations: &config.Migrations{Dir: "db"}}, ""},
		{config.Service{Name: "api", Pipeline: &config.Provider{Name: "dir"}}, "api's pipeline, dir, does not read"},
		{config.Service{Name: "api", Pipeline: &config.Provider{Name: "buildkite"}}, ""},
		{config.Service{Name: "api"}, "api has no pipeline"},
	} {
		got := migrationsUnread(c.svc)
		if c.want == "" && got != "" || c.want != "" && !strings.HasPrefix(got, c.want) {
			t.Errorf("%s with pipeline %v: %q; want %q", c.svc.Name, c.svc.Pipeline, got, c.want)
		}
	}
}
