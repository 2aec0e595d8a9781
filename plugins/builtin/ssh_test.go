package builtin

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/sdk/conformance"
	"github.com/ripcordhq/ripcord/plugins/ssh/sshtest"
)

// The ssh target served as a plugin, against two real sshd hosts: the
// restart takes a while, so the kit can watch an operation being
// cancelled; a misspelt setting inside a host is refused at its path.
func TestSSHBuiltinPassesConformance(t *testing.T) {
	lab := sshtest.Start(t, sshtest.Options{Hosts: 2})
	store := t.TempDir()
	body := []byte("#!/bin/sh\necho release\n")
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(store, digest), body, 0o644); err != nil {
		t.Fatal(err)
	}
	var hosts []map[string]any
	for _, h := range lab.Hosts {
		hosts = append(hosts, map[string]any{"name": h.Name, "address": h.Addr, "port": h.Port, "root": h.Root})
	}
	ref := core.Ref{Service: "api", Env: "production"}
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
		Release:     core.Release{Service: "api", Version: "v1", ArtifactDigest: "sha256:" + digest},
	})
}
