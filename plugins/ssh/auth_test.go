package ssh

import (
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// serveAgent runs an ssh-agent holding key on a fresh unix socket and
// returns the socket's path.
func serveAgent(t *testing.T, key any) string {
	t.Helper()
	kr := agent.NewKeyring()
	if err := kr.Add(agent.AddedKey{PrivateKey: key}); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "agent") // short: a socket path has a length limit
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); os.RemoveAll(dir) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _ = agent.ServeAgent(kr, c) }()
		}
	}()
	return sock
}

// A fleet is logged in to with the key an ssh-agent holds
// (identity_agent), and with a key file encrypted with a passphrase
// (refused, saying so, without the passphrase); a tcp:// health check is
// dialled from the host through the SSH connection, and fails where
// nothing listens.
func TestAgentEncryptedKeyAndTCPHealth(t *testing.T) {
	var key any
	f := newFleet(t, 2, func(c *Config) {
		raw, err := os.ReadFile(c.Auth.IdentityFile)
		if err != nil {
			t.Fatal(err)
		}
		if key, err = gossh.ParseRawPrivateKey(raw); err != nil {
			t.Fatal(err)
		}
		c.Auth = Auth{IdentityAgent: serveAgent(t, key)}
		c.Health = "tcp://$LISTEN"
	})
	if _, err := f.deploy("v1", 100); err != nil {
		t.Fatalf("logged in with the agent's key: %v", err)
	}
	for _, h := range []string{"web-1", "web-2"} {
		if got := f.serving(h); got != "v1" {
			t.Fatalf("%s serves %q after a deploy through the agent", h, got)
		}
	}

	blk, err := gossh.MarshalPrivateKeyWithPassphrase(key, "", []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	enc := filepath.Join(t.TempDir(), "id_encrypted")
	if err := os.WriteFile(enc, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	f.tgt.Close()
	noPass := f.cfg
	noPass.Auth = Auth{IdentityFile: enc}
	if _, err := New(noPass, nil); err == nil || !strings.Contains(err.Error(), "is encrypted: give its passphrase") {
		t.Fatalf("an encrypted key without its passphrase: %v", err)
	}
	f.cfg.Auth = Auth{IdentityFile: enc, Passphrase: "correct horse"}
	f.open()
	if _, err := f.deploy("v2", 100); err != nil {
		t.Fatalf("logged in with the encrypted key and its passphrase: %v", err)
	}
	if got := releases(f.status()); !sameMap(got, all("v2", 2)) {
		t.Fatalf("after the deploy with the encrypted key: %v", got)
	}

	// Nothing listens on the discard port of the hosts: the check fails
	// and the canary stops there.
	f.tgt.Close()
	f.cfg.Health = "tcp://" + net.JoinHostPort(f.lab.Hosts[0].Addr, "9")
	f.cfg.HealthTimeout = time.Second
	f.open()
	_, err = f.deploy("v3", 50)
	if err == nil || !strings.Contains(err.Error(), "host web-1") || !strings.Contains(err.Error(), "tcp connect") {
		t.Fatalf("a tcp health check where nothing listens: %v", err)
	}
}

// A restart that runs past restart_timeout stops the rollout at that host
// with the reason, within the deadline, and is not left running there.
func TestRestartPastItsDeadlineStopsTheRollout(t *testing.T) {
	slow := `[ "$RIPCORD_RELEASE" = v2 ] && { sleep 20; exit 1; }` + "\n" + restartScript
	f := newFleet(t, 2, func(c *Config) { c.Restart = slow; c.RestartTimeout = time.Second })
	if _, err := f.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := f.deploy("v2", 50)
	if err == nil || !strings.Contains(err.Error(), "host web-1") || !strings.Contains(err.Error(), "did not finish within 1s") {
		t.Fatalf("a restart past its deadline: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the deploy took %s with a 1s restart deadline", d)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		names, ok := f.lab.Hosts[0].Commands()
		if !ok || !slices.Contains(names, "sleep") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restart past its deadline still runs on web-1: %v", names)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := releases(f.status()); got["web-2"] != "v1" {
		t.Fatalf("web-2 was moved although web-1 stopped the rollout: %v", got)
	}
}
