package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	gossh "golang.org/x/crypto/ssh"

	"github.com/ripcordhq/ripcord/core"
)

// sshPerson is a person with an SSH key: the private key on disk for the
// real ssh client, the signer for golang.org/x/crypto/ssh.
type sshPerson struct {
	name, keyFile, pub, fp string
	signer                 gossh.Signer
}

func newSSHPerson(t *testing.T, dir, name string) sshPerson {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := gossh.MarshalPrivateKey(priv, name)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, name+".key")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return sshPerson{name: name, keyFile: keyFile, pub: strings.TrimSpace(string(gossh.MarshalAuthorizedKey(s.PublicKey()))) + " " + name, fp: gossh.FingerprintSHA256(s.PublicKey()), signer: s}
}

// operatorBlock is one person under bastion.operators.
func operatorBlock(p sshPerson, role string) string {
	return fmt.Sprintf("    - name: %s\n      keys: [%q]\n      role: %s\n", p.name, p.pub, role)
}

// freePort is a port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// bastionProject is a project whose server has a bastion on 127.0.0.1.
func bastionProject(t *testing.T, rollout string, ops ...string) (*project, int) {
	t.Helper()
	port := freePort(t)
	p := newProject(t, rollout+fmt.Sprintf("bastion:\n  listen: 127.0.0.1:%d\n  operators:\n%s", port, strings.Join(ops, "")))
	return p, port
}

// sshRun runs a command over SSH without a terminal, as golang.org/x/crypto
// clients (scripts, CI) do, and returns its exit status and output.
func sshRun(t *testing.T, port int, who sshPerson, command string) (int, string, string) {
	t.Helper()
	client, err := sshDial(port, who, nil)
	if err != nil {
		t.Fatalf("%s: %v", who.name, err)
	}
	defer client.Close()
	s, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	s.Stdout, s.Stderr = &out, &errOut
	err = s.Run(command)
	var exit *gossh.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errOut.String()
	case errors.As(err, &exit):
		return exit.ExitStatus(), out.String(), errOut.String()
	}
	t.Fatalf("%s: %s: %v", who.name, command, err)
	return -1, "", ""
}

func sshDial(port int, who sshPerson, banner *string) (*gossh.Client, error) {
	return gossh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &gossh.ClientConfig{
		User:            who.name,
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(who.signer)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(),
		BannerCallback: func(msg string) error {
			if banner != nil {
				*banner = msg
			}
			return nil
		},
		Timeout: 30 * time.Second,
	})
}

// sshConsole opens the console over the real OpenSSH client in a real
// terminal under tmux.
func (p *project) sshConsole(port int, who sshPerson) *terminal {
	p.t.Helper()
	need(p.t, "ssh", "openssh-client")
	return newTerminal(p.t, fmt.Sprintf("exec ssh -tt -p %d -i %s -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR %s@127.0.0.1 2>>%s",
		port, who.keyFile, who.name, filepath.Join(p.dir, who.name+".ssh.log")))
}

// serverLogShows waits until the server's log holds text.
func (p *project) serverLogShows(text string, within time.Duration) {
	p.t.Helper()
	waitUntil(p.t, within, "the server's log to say "+text, func() bool {
		b, _ := os.ReadFile(filepath.Join(p.dir, "serve.log"))
		return bytes.Contains(b, []byte(text))
	})
}

// Two people open consoles through the real ssh client, each key a
// person: bo (viewer) pressing r is told why not and nothing happens; ana
// (operator) rolls back with r, enter, y, bo watching; the audit names her
// and her key. The window follows a resize. Bo's key removed from the
// config while his console is open is refused at his next key press, and
// a config that does not load changes nothing.
func TestBastionConsolesOverRealSSH(t *testing.T) {
	keys := t.TempDir()
	ana, bo := newSSHPerson(t, keys, "ana"), newSSHPerson(t, keys, "bo")
	p, port := bastionProject(t, "    rollout: [ {weight: 50}, {pause: judgment}, {weight: 100} ]\n",
		operatorBlock(ana, "operator"), operatorBlock(bo, "viewer")+"      roles: {production: viewer}\n")
	srv := p.serve()
	p.mustRun("promote", "api", "--to", "production", "--version", "v1", "--full", "--yes")
	p.mustRun("promote", "api", "--to", "production", "--version", "v2", "--yes")
	// SIGHUP reloads the config; the server goes on.
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.serverLogShows("config reloaded (SIGHUP): the bastion has 2 people with 2 keys", 30*time.Second)

	anaT, boT := p.sshConsole(port, ana), p.sshConsole(port, bo)
	for _, c := range []*terminal{anaT, boT} {
		c.waitFor("v1 ▸ v2 50%", 90*time.Second)
	}

	boT.keys("r")
	boT.waitFor("rollback refused: rollback needs role operator in production; you are viewer", 30*time.Second)

	anaT.waitFor("· r rollback ·", 60*time.Second) // offered once the engine's word arrived
	anaT.keys("r")
	anaT.waitFor("▸ v1", 60*time.Second)
	anaT.keys("Enter")
	anaT.waitFor("rollback api in production: v2 → v1", 30*time.Second)
	anaT.waitFor("also watching: bo", 30*time.Second)
	anaT.keys("y")
	for _, c := range []*terminal{anaT, boT} {
		c.waitFor("rolled back to v1", 90*time.Second)
	}
	var rollbacks []core.AuditEntry
	for _, e := range p.audit() {
		if e.Action == "rollback" {
			rollbacks = append(rollbacks, e)
		}
	}
	if len(rollbacks) != 1 || rollbacks[0].Actor.Name != "ana" || rollbacks[0].Actor.KeyFingerprint != ana.fp {
		t.Fatalf("rollbacks in the audit: %+v; want one, by ana with her key %s", rollbacks, ana.fp)
	}

	// The window shrinks: the console redraws to the new width.
	if out, err := exec.Command("tmux", "-L", anaT.name, "resize-window", "-t", anaT.name, "-x", "100", "-y", "30").CombinedOutput(); err != nil {
		t.Fatalf("resize: %v\n%s", err, out)
	}
	waitUntil(t, 30*time.Second, "the console to redraw at 100 columns", func() bool {
		return widest(anaT.screen()) == 100
	})

	// A config that does not load: logged, the operators stay.
	orig, err := os.ReadFile(p.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.cfg, append(append([]byte{}, orig...), "    oops: [\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	p.serverLogShows("refused, the bastion keeps its operators", 30*time.Second)
	client, err := sshDial(port, bo, nil)
	if err != nil {
		t.Fatalf("bo's key after a broken reload: %v", err)
	}
	client.Close()

	// Bo's key leaves the config while his console is open.
	without := strings.Replace(string(orig), operatorBlock(bo, "viewer")+"      roles: {production: viewer}\n", "", 1)
	if without == string(orig) {
		t.Fatal("bo's block not found in the config")
	}
	if err := os.WriteFile(p.cfg, []byte(without), 0o644); err != nil {
		t.Fatal(err)
	}
	p.serverLogShows("the bastion has 1 people with 1 keys", 30*time.Second)
	boT.keys("p")
	boT.waitFor("is no longer an operator's", 30*time.Second)
	if _, err := sshDial(port, bo, nil); err == nil {
		t.Fatal("bo's removed key still authenticates")
	}

	for _, c := range []*terminal{anaT, boT} {
		c.keys("q")
		waitUntil(t, 30*time.Second, "the console to quit", func() bool { return !c.alive() })
	}
}

// widest is the widest line on a screen, in cells.
func widest(screen string) int {
	w := 0
	for _, l := range strings.Split(screen, "\n") {
		w = max(w, utf8.RuneCountInString(strings.TrimRight(l, " ")))
	}
	return w
}

// Without a terminal, commands over SSH are the CLI's, with its output and
// exit codes: 0 done, 3 refused (here: by role), 4 lock held, 2 a command
// the bastion does not run. Two people rolling back at the same moment
// meet at the lock. A connection dropped in the middle of a rollback
// leaves the rollback to finish in the server.
func TestBastionCommandsWithoutATerminal(t *testing.T) {
	keys := t.TempDir()
	ana, bo, cy, dan := newSSHPerson(t, keys, "ana"), newSSHPerson(t, keys, "bo"), newSSHPerson(t, keys, "cy"), newSSHPerson(t, keys, "dan")
	danKeys := filepath.Join(keys, "dan.keys")
	if err := os.WriteFile(danKeys, []byte("# dan's keys\n"+dan.pub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, port := bastionProject(t, "    rollout: [ {weight: 50}, {pause: judgment}, {weight: 100} ]\n",
		operatorBlock(ana, "operator"), operatorBlock(bo, "viewer"), operatorBlock(cy, "releaser"),
		fmt.Sprintf("    - name: dan\n      authorized_keys: %s\n      role: operator\n", danKeys))
	p.env = append(p.env, "SLOW_RESTART=4") // a rollback takes 4 s: long enough to race and to drop
	p.serve()

	var banner string
	client, err := sshDial(port, ana, &banner)
	if err != nil {
		t.Fatal(err)
	}
	client.Close()
	if !strings.Contains(banner, "ripcord bastion of project shop") {
		t.Fatalf("banner %q does not name the project", banner)
	}

	code, out, errOut := sshRun(t, port, ana, "promote api --to production --version v1 --full --yes")
	if code != 3 || !strings.Contains(errOut, "full-promote needs role releaser in production; you are operator") {
		t.Fatalf("ana's promote: exit %d\n%s%s", code, out, errOut)
	}
	// v2 all the way: v1 stops, so a rollback starts it again (4 s) and
	// a second person's rollback meets the first one's lock.
	for _, c := range []string{"promote api --to production --version v1 --full --yes", "promote api --to production --version v2 --full --yes"} {
		if code, out, errOut := sshRun(t, port, cy, c); code != 0 {
			t.Fatalf("cy: %s: exit %d\n%s%s", c, code, out, errOut)
		}
	}
	code, out, _ = sshRun(t, port, bo, "status --json")
	var st struct {
		Project string `json:"project"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Project != "shop" {
		t.Fatalf("bo's status --json: exit %d\n%s", code, out)
	}
	code, out, errOut = sshRun(t, port, bo, "rollback api --env production --yes")
	if code != 3 || !strings.Contains(errOut, "rollback needs role operator in production; you are viewer") {
		t.Fatalf("bo's rollback: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := sshRun(t, port, bo, "serve"); code != 2 || !strings.Contains(errOut, "not a command the bastion runs") {
		t.Fatalf("serve over the bastion: exit %d %s", code, errOut)
	}
	if code, out, errOut := sshRun(t, port, bo, "history api --env production"); code != 0 || !strings.Contains(out, "v2") {
		t.Fatalf("bo's history: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := sshRun(t, port, bo, "audit"); code != 0 || !strings.Contains(out, cy.fp) {
		t.Fatalf("bo's audit: exit %d, want cy's promotes with her key %s\n%s%s", code, cy.fp, out, errOut)
	}

	// A key nobody has, with the real OpenSSH client: refused before any
	// session, the client told which key.
	need(t, "ssh", "openssh-client")
	eve := newSSHPerson(t, keys, "eve")
	cmd := exec.Command("ssh", "-p", fmt.Sprint(port), "-i", eve.keyFile, "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "NumberOfPasswordPrompts=1", "eve@127.0.0.1", "status")
	cmd.Stdin = nil
	sshOut, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 255 || !strings.Contains(string(sshOut), "no operator has the key "+eve.fp) {
		t.Fatalf("eve's unknown key with ssh: %v\n%s", err, sshOut)
	}

	// A person's lock: the others meet it with exit 4.
	if code, out, errOut := sshRun(t, port, ana, "lock api --env production --reason investigating"); code != 0 {
		t.Fatalf("ana's lock: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = sshRun(t, port, dan, "rollback api --env production --yes")
	if code != 4 || !strings.Contains(out+errOut, "ana") {
		t.Fatalf("dan's rollback under ana's lock: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := sshRun(t, port, ana, "unlock api --env production"); code != 0 {
		t.Fatalf("ana's unlock: exit %d\n%s%s", code, out, errOut)
	}

	// Ana and dan roll back at the same moment: one does, the other meets
	// the operation's lock.
	type result struct {
		who       string
		code      int
		out, eout string
	}
	results := make(chan result, 2)
	var start sync.WaitGroup
	start.Add(1)
	for _, who := range []sshPerson{ana, dan} {
		client, err := sshDial(port, who, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		s, err := client.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			var out, eout bytes.Buffer
			s.Stdout, s.Stderr = &out, &eout
			start.Wait()
			err := s.Run("rollback api --env production --yes --reason racing")
			code := 0
			var exit *gossh.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitStatus()
			} else if err != nil {
				code = -1
			}
			results <- result{who.name, code, out.String(), eout.String()}
		}()
	}
	start.Done()
	a, b := <-results, <-results
	if a.code > b.code {
		a, b = b, a
	}
	if a.code != 0 || b.code != 4 {
		t.Fatalf("racing rollbacks: %s exit %d (%s%s), %s exit %d (%s%s); want one 0 and one 4", a.who, a.code, a.out, a.eout, b.who, b.code, b.out, b.eout)
	}
	if p.current() != "v1" {
		t.Fatalf("production runs %s after the rollback", p.current())
	}

	// v3 all the way (v1 stops), and ana's rollback, which starts v1
	// again (4 s), loses its connection in the middle.
	if code, out, errOut := sshRun(t, port, cy, "promote api --to production --version v3 --full --yes"); code != 0 {
		t.Fatalf("cy's promote of v3: exit %d\n%s%s", code, out, errOut)
	}
	client, err = sshDial(port, ana, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("rollback api --env production --yes --reason dropped"); err != nil {
		t.Fatal(err)
	}
	st2 := p.store()
	waitUntil(t, 60*time.Second, "the rollback to be in flight", func() bool {
		ops, err := st2.Unfinished(context.Background())
		return err == nil && len(ops) == 1 && ops[0].Kind == "rollback" && ops[0].State == core.OpRunning
	})
	client.Close() // the connection drops
	waitUntil(t, 60*time.Second, "the rollback to finish without its session", func() bool {
		ops, err := st2.Unfinished(context.Background())
		return err == nil && len(ops) == 0
	})
	if got := p.current(); got != "v1" {
		t.Fatalf("production runs %s after the dropped rollback; want v1", got)
	}
	var byAna []string
	for _, e := range p.audit() {
		if e.Action == "rollback" && e.Actor.KeyFingerprint != "" {
			byAna = append(byAna, e.Actor.Name+" "+e.Actor.KeyFingerprint+" "+e.Reason)
		}
	}
	// Dan's key leaves his authorized_keys file: the server sees the
	// file change and refuses it.
	if err := os.WriteFile(danKeys, []byte("# dan's keys\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.serverLogShows("config reloaded (a change of "+danKeys+")", 30*time.Second)
	if _, err := sshDial(port, dan, nil); err == nil {
		t.Fatal("dan's key, removed from his authorized_keys, still authenticates")
	}

	want := []string{"ana " + ana.fp + " dropped"}
	if got := byAna[len(byAna)-1:]; len(byAna) != 2 || got[0] != want[0] {
		t.Fatalf("rollbacks over the bastion in the audit: %q; want the race's winner, then %q", byAna, want[0])
	}
}
