package builtin

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/ripcordhq/ripcord/core/config"
	"github.com/ripcordhq/ripcord/plugins/sdk"
	"github.com/ripcordhq/ripcord/plugins/sdk/conformance"
	"github.com/ripcordhq/ripcord/plugins/ssh/sshtest"
)

// The ssh target served as a plugin, against ten real sshd hosts (so the
// kit's 10% canary is exactly one host: the status reports the share of
// hosts moved): the restart takes a while, so the kit can watch an
// operation being cancelled; a misspelt setting inside a host is refused
// at its path; a canary beside the current release is aborted, promoted
// and rolled back.
func TestSSHBuiltinPassesConformance(t *testing.T) {
	lab := sshtest.Start(t, sshtest.Options{Hosts: 10})
	store := t.TempDir()
	artifact := func(body string) string {
		sum := sha256.Sum256([]byte(body))
		digest := hex.EncodeToString(sum[:])
		if err := os.WriteFile(filepath.Join(store, digest), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return digest
	}
	digest, candidate := artifact("#!/bin/sh\necho release\n"), artifact("#!/bin/sh\necho candidate\n")
	var hosts []map[string]any
	for _, h := range lab.Hosts {
		hosts = append(hosts, map[string]any{"name": h.Name, "address": h.Addr, "port": h.Port, "root": h.Root})
	}
	ref := sdk.Ref{Service: "api", Env: "production"}
	settings := map[string]any{
		"ref": map[string]any{"service": ref.Service, "env": ref.Env}, "hosts": hosts, "user": lab.User,
		"identity_file": lab.ClientKey, "known_hosts": lab.KnownHosts, "restart": "sleep 2", "health": "test -x artifact",
		"artifact_store": store, "state_dir": t.TempDir(), "connect_timeout": "5s",
	}
	bad := map[string]any{}
	for k, v := range settings {
		bad[k] = v
	}
	bad["hosts"] = []map[string]any{{"name": "web-1", "address": "10.0.0.1", "prot": 22}}
	conformance.Run(t, conformance.Options{
		Binary:      launcher(t, "ssh"),
		Name:        "ssh",
		Env:         []string{serveEnv + "=ssh"},
		Settings:    settings,
		BadSettings: bad,
		BadPath:     "hosts.0.prot",
		Kinds:       []string{"target"},
		Ref:         ref,
		Release:     sdk.Release{Service: "api", Version: "v1", ArtifactDigest: "sha256:" + digest},
		Candidate:   sdk.Release{Service: "api", Version: "v2", ArtifactDigest: "sha256:" + candidate},
	})
}

// The shipped SSH example's target block is what the provider accepts:
// decoded strictly and checked, with the settings the console adds.
func TestSSHExampleSettingsAreAccepted(t *testing.T) {
	f, err := config.Load(filepath.Join("..", "..", "docs", "ripcord.ssh.example.yaml"),
		config.Options{Providers: config.BuiltinProviders, LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	p := f.Environments[0].Services[0].Target
	settings := maps.Clone(p.Settings)
	settings["ref"] = map[string]any{"service": "api", "env": "production"}
	settings["state_dir"] = t.TempDir()
	raw, err := json.Marshal(settings)
	if err != nil {
		t.Fatal(err)
	}
	var s sshSettings
	if err := decodeStrict(raw, &s); err != nil {
		t.Fatalf("the example's ssh settings do not decode: %v", err)
	}
	if errs := s.check(); len(errs) > 0 {
		t.Fatalf("the example's ssh settings are refused: %v", errs)
	}
	if len(s.Hosts) != 4 || !s.Hosts[0].Canary || s.Hosts[3].Jump == "" || s.MaxParallel != 2 {
		t.Fatalf("the example decoded to %+v", s)
	}
}

// Settings the provider refuses name their path, so the console can point
// at file:line:col.
func TestSSHSettingsErrorsNameTheirPath(t *testing.T) {
	for _, c := range []struct {
		settings string
		path     string
	}{
		{`{"hosts":[{"name":"a","address":"10.0.0.1","port":70000}]}`, "hosts.0.port"},
		{`{"hosts":[{"name":"a","address":"10.0.0.1"},{"name":"a","address":"10.0.0.2"}]}`, "hosts.1.name"},
		{`{"host_key_policy":"yes"}`, "host_key_policy"},
		{`{"hosts":[{"name":"a","address":"10.0.0.1","jump":"deploy@:x"}]}`, "hosts.0.jump"},
		{`{"health":"ftp://127.0.0.1/"}`, "health"},
		{`{"identity_file":""}`, "identity_file"},
		{`{"root":"srv/api"}`, "root"},
	} {
		base := map[string]any{"ref": map[string]any{"service": "api", "env": "production"}, "user": "deploy", "root": "/srv/api",
			"identity_file": "/k", "restart": "true", "health": "true", "state_dir": "/tmp/x",
			"hosts": []any{map[string]any{"name": "web-1", "address": "10.0.0.1"}}}
		var over map[string]any
		if err := json.Unmarshal([]byte(c.settings), &over); err != nil {
			t.Fatal(err)
		}
		maps.Copy(base, over)
		raw, _ := json.Marshal(base)
		var s sshSettings
		err := decodeStrict(raw, &s)
		var errs sdk.SettingErrors
		if err == nil {
			errs = s.check()
		} else if !errors.As(err, &errs) {
			t.Fatalf("%s: %v", c.settings, err)
		}
		found := false
		for _, e := range errs {
			found = found || e.Path == c.path
		}
		if !found {
			t.Errorf("%s: errors %v do not name %s", c.settings, errs, c.path)
		}
	}
}
