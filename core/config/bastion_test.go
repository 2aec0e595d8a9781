package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// testKey is a fresh public key in authorized_keys form.
func testKey(t *testing.T, comment string) (line, fingerprint string) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk))) + " " + comment, ssh.FingerprintSHA256(pk)
}

const bastionHead = "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: staging\n    target: {provider: local}\n  - name: production\n    from: staging\n    target: {provider: local}\n"

// A bastion block is read with its defaults: sessions, idle timeout, the
// host key beside the state, every operator a viewer unless said.
func TestBastionDefaultsAndRoles(t *testing.T) {
	ana, _ := testKey(t, "ana@laptop")
	f, err := Parse("/srv/shop/ripcord.yaml", []byte(bastionHead+"bastion:\n  listen: 127.0.0.1:2222\n  operators:\n    - name: ana\n      keys: [\""+ana+"\"]\n      role: releaser\n      roles: {production: operator}\n    - name: bo\n      keys: [\""+mustKey(t)+"\"]\n"), Options{Providers: BuiltinProviders})
	if err != nil {
		t.Fatal(err)
	}
	b := f.Bastion
	if b.MaxSessions != DefaultBastionSessions || b.MaxSessionsPerKey != DefaultBastionSessionsPerKey || b.IdleTimeout.D() != DefaultBastionIdleTimeout {
		t.Fatalf("defaults: %+v", b)
	}
	if want := "/srv/shop/.ripcord/" + BastionHostKeyName; b.HostKey != want {
		t.Fatalf("host key %q, want %q (beside the state)", b.HostKey, want)
	}
	if got := b.Operators[0].RoleFor("production"); got != "operator" {
		t.Fatalf("ana in production: %s, want operator (roles)", got)
	}
	if got := b.Operators[0].RoleFor("staging"); got != "releaser" {
		t.Fatalf("ana in staging: %s, want releaser (role)", got)
	}
	if got := b.Operators[1].RoleFor("production"); got != "viewer" {
		t.Fatalf("bo: %s, want viewer (the default)", got)
	}
}

func mustKey(t *testing.T) string {
	line, _ := testKey(t, "bo@desk")
	return line
}

// Every mistake in a bastion block is reported where it is written.
func TestBastionMistakesAreReportedAtTheirPosition(t *testing.T) {
	ana, anaFP := testKey(t, "ana")
	dir := t.TempDir()
	openKey := filepath.Join(dir, "host_key")
	if err := os.WriteFile(openKey, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	badKeys := filepath.Join(dir, "bo.keys")
	if err := os.WriteFile(badKeys, []byte("# bo\n"+mustKey(t)+"\nssh-ed25519 garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dupKeys := filepath.Join(dir, "cy.keys")
	if err := os.WriteFile(dupKeys, []byte(ana+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, yaml, want string }{
		{"listen without a port", "bastion:\n  listen: localhost\n  operators: []\n",
			`ripcord.yaml:11:11: bastion.listen: "localhost" is not host:port (e.g. 0.0.0.0:2222): address localhost: missing port in address`},
		{"listen port out of range", "bastion:\n  listen: \":70000\"\n",
			`ripcord.yaml:11:11: bastion.listen: ":70000": the port must be a number from 0 to 65535`},
		{"an unknown role", "bastion:\n  listen: :2222\n  operators:\n    - name: ana\n      keys: [\"" + ana + "\"]\n      role: deployer\n",
			`ripcord.yaml:15:13: bastion.operators[0].role: expected one of viewer, operator, releaser, admin, got "deployer"`},
		{"a role in an unknown environment", "bastion:\n  listen: :2222\n  operators:\n    - name: ana\n      keys: [\"" + ana + "\"]\n      roles: {prodution: admin}\n",
			`ripcord.yaml:15:15: bastion.operators[0].roles: unknown environment "prodution"; did you mean "production"? known environments: staging, production`},
		{"an unknown role per environment", "bastion:\n  listen: :2222\n  operators:\n    - name: ana\n      keys: [\"" + ana + "\"]\n      roles:\n        production: god\n",
			`ripcord.yaml:16:21: bastion.operators[0].roles.production: expected one of viewer, operator, releaser, admin, got "god"`},
		{"a key that is not one", "bastion:\n  listen: :2222\n  operators:\n    - name: ana\n      keys: [\"ssh-ed25519 AAAAnotakey ana\"]\n",
			`ripcord.yaml:14:14: bastion.operators[0].keys[0] is not an SSH public key (want a line of authorized_keys: ssh-ed25519 AAAA… comment): ssh: no key found`},
		{"an operator without keys", "bastion:\n  listen: :2222\n  operators:\n    - name: ana\n",
			`ripcord.yaml:13:7: bastion.operators[0] (ana) has neither keys nor authorized_keys: nobody could connect as them`},
		{"a bad line in authorized_keys", "bastion:\n  listen: :2222\n  operators:\n    - name: bo\n      authorized_keys: " + badKeys + "\n",
			`ripcord.yaml:14:24: bastion.operators[0].authorized_keys: ` + badKeys + `:3: not an SSH public key (authorized_keys of bo): ssh: no key found`},
		{"a missing authorized_keys", "bastion:\n  listen: :2222\n  operators:\n    - name: bo\n      authorized_keys: nope.keys\n",
			`ripcord.yaml:14:24: bastion.operators[0].authorized_keys: reading the authorized_keys of bo: open ` + filepath.Join(dir, "nope.keys") + `: no such file or directory`},
		{"one key, two people", "bastion:\n  listen: :2222\n  operators:\n    - name: ana\n      keys: [\"" + ana + "\"]\n    - name: cy\n      authorized_keys: " + dupKeys + "\n",
			dupKeys + `:1:1: the key ` + anaFP + ` is ana's and cy's: a key must name one person`},
		{"a host key others can read", "bastion:\n  listen: :2222\n  host_key: " + openKey + "\n",
			`ripcord.yaml:12:13: bastion.host_key: ` + openKey + ` is readable by others (mode 0644): chmod 600 it`},
		{"no sessions", "bastion:\n  listen: :2222\n  max_sessions: 0\n",
			`ripcord.yaml:12:17: bastion.max_sessions must be at least 1`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(filepath.Join(dir, "ripcord.yaml"), []byte(bastionHead+tc.yaml), Options{Providers: BuiltinProviders})
			if err == nil {
				t.Fatal("accepted")
			}
			got := strings.ReplaceAll(err.Error(), dir+"/", "")
			want := strings.ReplaceAll(tc.want, dir+"/", "")
			// The SSH library's own words may follow ours.
			if !strings.HasPrefix(got, want) {
				t.Fatalf("\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

// A host key written by the server (or ssh-keygen) passes; so does none.
func TestBastionHostKeyThatIsAKeyPasses(t *testing.T) {
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "host")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, hk := range []string{path, filepath.Join(dir, "not-yet")} {
		if _, err := Parse(filepath.Join(dir, "ripcord.yaml"), []byte(bastionHead+"bastion:\n  listen: :2222\n  host_key: "+hk+"\n"), Options{}); err != nil {
			t.Fatalf("host_key %s: %v", hk, err)
		}
	}
}
