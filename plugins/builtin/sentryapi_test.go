package builtin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/ripcordhq/ripcord/plugins/sdk"
	"github.com/ripcordhq/ripcord/plugins/sdk/conformance"
)

// The built-in `sentry` provider, as its own process, counts from a Sentry
// that serves the documented Discover table (here an httptest server with
// the fixture of plugins/sentryapi), asking for the environment named in
// its settings with the token from them.
func TestSentryBuiltinPassesConformance(t *testing.T) {
	page, err := os.ReadFile("../sentryapi/testdata/discover-release-timestamp-page2.json")
	if err != nil {
		t.Fatal(err)
	}
	var asked atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sntrys_conformance" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/api/0/organizations/acme/events/" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		asked.Store(r.URL.Query().Get("environment"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(page)
	}))
	defer srv.Close()
	conformance.Run(t, conformance.Options{
		Binary:      launcher(t, "sentry"),
		Name:        "sentry",
		Env:         []string{serveEnv + "=sentry"},
		Settings:    map[string]any{"organization": "acme", "project": "2", "token": "sntrys_conformance", "url": srv.URL, "environment": "production"},
		BadSettings: map[string]any{"organization": "acme", "project": "pump-station", "token": "t"},
		BadPath:     "project",
		Kinds:       []string{"errors"},
		Ref:         sdk.Ref{Service: "conformance", Env: "test"},
	})
	if got, _ := asked.Load().(string); got != "production" {
		t.Errorf("asked Sentry for environment %q, want the one the settings name", got)
	}
}

func TestSentryBadSettingsNameTheirPath(t *testing.T) {
	for name, c := range map[string]struct {
		settings string
		paths    []string
	}{
		"missing":     {`{}`, []string{"organization", "project", "token"}},
		"project":     {`{"organization":"acme","project":"pump-station","token":"t"}`, []string{"project"}},
		"url":         {`{"organization":"acme","project":"2","token":"t","url":"sentry.example.com"}`, []string{"url"}},
		"poll":        {`{"organization":"acme","project":"2","token":"t","poll":"1s"}`, []string{"poll"}},
		"unknown key": {`{"organization":"acme","project":"2","token":"t","org":"x"}`, []string{"org"}},
		"poll 9s":     {`{"organization":"acme","project":"2","token":"t","poll":"9s"}`, []string{"poll"}},
		"poll 0.1m":   {`{"organization":"acme","project":"2","token":"t","poll":"0.1m"}`, []string{"poll"}},
		"poll 900ms":  {`{"organization":"acme","project":"2","token":"t","poll":"900ms"}`, []string{"poll"}},
		"project 1.5": {`{"organization":"acme","project":1.5,"token":"t"}`, []string{"project"}},
		"project -2":  {`{"organization":"acme","project":-2,"token":"t"}`, []string{"project"}},
	} {
		t.Run(name, func(t *testing.T) {
			s := &sentryAPIServer{log: hclog.NewNullLogger()}
			err := s.Configure(context.Background(), sdk.ConfigureRequest{Settings: []byte(c.settings)})
			var se sdk.SettingErrors
			if !errors.As(err, &se) {
				t.Fatalf("Configure = %v, want setting errors", err)
			}
			var got []string
			for _, e := range se {
				got = append(got, e.Path)
			}
			if strings.Join(got, ",") != strings.Join(c.paths, ",") {
				t.Fatalf("paths %v, want %v (%v)", got, c.paths, err)
			}
			var deg sdk.DegradedError
			if err := s.CheckHealth(context.Background()); !errors.As(err, &deg) {
				t.Fatalf("CheckHealth after rejected settings = %v, want degraded", err)
			}
		})
	}
}

// A project ID written as the number it is, and every poll of 10 s or
// more in the forms ripcord.yaml writes durations, are accepted.
func TestSentryAcceptsNumericProjectsAndPollsFromTenSeconds(t *testing.T) {
	for _, settings := range []string{
		`{"organization":"acme","project":4505321234567890,"token":"t"}`,
		`{"organization":"acme","project":"2","token":"t","url":"https://sentry.example.com/"}`,
		`{"organization":"acme","project":"2","token":"t","poll":"10s"}`,
		`{"organization":"acme","project":"2","token":"t","poll":"10.5s"}`,
		`{"organization":"acme","project":"2","token":"t","poll":"1m"}`,
		`{"organization":"acme","project":"2","token":"t","poll":"1m0s"}`,
		`{"organization":"acme","project":"2","token":"t","poll":"1h30m"}`,
		`{"organization":"acme","project":"2","token":"t","poll":"1d"}`,
	} {
		s := &sentryAPIServer{log: hclog.NewNullLogger()}
		if err := s.Configure(context.Background(), sdk.ConfigureRequest{Settings: []byte(settings)}); err != nil {
			t.Errorf("Configure(%s) = %v, want accepted", settings, err)
		}
	}
	var set sentrySettings
	if err := decodeStrict([]byte(`{"organization":"acme","project":4505321234567890,"token":"t"}`), &set); err != nil {
		t.Fatal(err)
	}
	if set.Project != "4505321234567890" {
		t.Fatalf("project = %q, want the ID exactly as written", set.Project)
	}
}
