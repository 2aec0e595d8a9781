package ssh

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
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
	f.waitNotRunning(0, "sleep", "the restart past its deadline")
	if got := releases(f.status()); got["web-2"] != "v1" {
		t.Fatalf("web-2 was moved although web-1 stopped the rollout: %v", got)
	}
}

// A host that goes silent while its restart runs past the deadline: the
// kill of the restart cannot get an answer either, and the deploy still
// ends at once with the restart's deadline, instead of waiting on the
// silent connection for as long as the operation may take.
func TestRestartPastItsDeadlineOnASilentHostEnds(t *testing.T) {
	started := filepath.Join(t.TempDir(), "started")
	slow := fmt.Sprintf(`[ "$RIPCORD_RELEASE" = v2 ] && { touch %s; sleep 30; exit 1; }`, started) + "\n" + restartScript
	f := newFleet(t, 1, func(c *Config) { c.Restart = slow; c.RestartTimeout = 2 * time.Second })
	if _, err := f.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := f.deploy("v2", 100)
		ended <- err
	}()
	for {
		if _, err := os.Stat(started); err == nil {
			break
		}
		select {
		case err := <-ended:
			t.Fatalf("the deploy ended before its restart started: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	f.lab.Hosts[0].Cut()
	defer f.lab.Hosts[0].Restore()
	select {
	case err := <-ended:
		if err == nil || !strings.Contains(err.Error(), "did not finish within 2s") {
			t.Fatalf("a restart past its deadline on a silent host: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the deploy still waits on the silent host a minute after its restart's 2s deadline")
	}
}

// A command on a connection whose host went silent ends with its context:
// opening its session waits for the host's answer no longer than that.
func TestCommandOnASilentConnectionEndsWithItsContext(t *testing.T) {
	f := newFleet(t, 1, nil)
	h := f.cfg.Hosts[0]
	ep := endpoint{name: h.Name, addr: h.addr(), user: h.User}
	c, err := f.tgt.pool.get(context.Background(), ep, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.run(context.Background(), "echo up"); err != nil || strings.TrimSpace(r.stdout) != "up" {
		t.Fatalf("a command before the host went silent: %+v, %v", r, err)
	}
	f.lab.Hosts[0].Cut()
	defer f.lab.Hosts[0].Restore()
	err = withinASecond(t, "a command on the silent connection", func(ctx context.Context) error {
		_, err := c.run(ctx, "echo up")
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a command on a silent connection: %v; want its context's deadline", err)
	}
}

// withinASecond runs call with a 1 s context and returns what it returns,
// failing the test when it still runs 30 s later.
func withinASecond(t *testing.T, what string, call func(context.Context) error) error {
	t.Helper()
	ended := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		ended <- call(ctx)
	}()
	select {
	case err := <-ended:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s with a 1s context still runs after 30s", what)
		return nil
	}
}

// A call on a host's connection that does not end when the connection is
// closed under it (its context done) does not hold the operation: the
// host is reported unreachable shortly after the deadline, and the next
// call dials a new connection.
func TestCallThatIgnoresItsClosedConnectionIsAbandoned(t *testing.T) {
	f := newFleet(t, 1, nil)
	h := f.cfg.Hosts[0]
	stuck := make(chan struct{})
	defer close(stuck)
	err := withinASecond(t, "a call that ignores its closed connection", func(ctx context.Context) error {
		return f.tgt.withConn(ctx, h, func(*conn) error { <-stuck; return nil })
	})
	var ue *unreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("a call past its deadline: %v; want the host unreachable", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = f.tgt.withConn(ctx, h, func(c *conn) error {
		r, err := c.run(ctx, "echo up")
		if err == nil && strings.TrimSpace(r.stdout) != "up" {
			err = fmt.Errorf("echo printed %q", r.stdout)
		}
		return err
	})
	if err != nil {
		t.Fatalf("the next call on the host: %v", err)
	}
}
