package config

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Bastion is the server's SSH front door. People are known by their
// public keys only; what each may do is their role in each environment.
type Bastion struct {
	Listen            string     `yaml:"listen" required:"true" doc:"Address the server accepts SSH connections on (host:port, e.g. 0.0.0.0:2222)."`
	HostKey           string     `yaml:"host_key" doc:"The server's SSH host key (OpenSSH private key), generated (ed25519, mode 0600) on first start when missing (default: bastion_host_ed25519 beside the state file)."`
	MaxSessions       int        `yaml:"max_sessions" doc:"Sessions open at once over all keys (default 50)."`
	MaxSessionsPerKey int        `yaml:"max_sessions_per_key" doc:"Sessions open at once with one key (default 4)."`
	IdleTimeout       Duration   `yaml:"idle_timeout" doc:"A connection with no traffic this long is closed (a command that prints nothing for that long too; its operation goes on in the server); an open console is kept alive (default 15m)."`
	Operators         []Operator `yaml:"operators" doc:"The people who may connect: each key a person, each person a role per environment. Checked on every command; the server reloads this file when it changes."`
	Pos               Pos        `yaml:"-"`
}

// Operator is one person of the bastion.
type Operator struct {
	Name           string            `yaml:"name" required:"true" doc:"The person's name, as the audit log records them."`
	Keys           []string          `yaml:"keys" doc:"The person's SSH public keys, each as in authorized_keys (ssh-ed25519 AAAA… comment)."`
	AuthorizedKeys string            `yaml:"authorized_keys" doc:"A file of the person's public keys in authorized_keys format (one per line, # comments), such as a copy of github.com/NAME.keys."`
	Role           string            `yaml:"role" enum:"viewer,operator,releaser,admin" doc:"The person's role in every environment roles does not name (default viewer): viewer watches; operator also rolls back, aborts, pauses, resumes, locks and backs up; releaser also promotes and clears holds; admin also forces locks and overrides gates."`
	Roles          map[string]string `yaml:"roles" enum:"viewer,operator,releaser,admin" doc:"The person's role per environment, overriding role (production: operator)."`
	Pos            Pos               `yaml:"-"`
}

// Bastion defaults.
const (
	DefaultBastionSessions       = 50
	DefaultBastionSessionsPerKey = 4
	DefaultBastionIdleTimeout    = 15 * time.Minute
	// BastionHostKeyName is the host key's file name beside the state.
	BastionHostKeyName = "bastion_host_ed25519"
)

// RoleFor is the operator's role in env.
func (o Operator) RoleFor(env string) string {
	if r, ok := o.Roles[env]; ok {
		return r
	}
	return o.Role
}

// OperatorKey is one public key of an operator, and where it was written.
type OperatorKey struct {
	Key ssh.PublicKey
	// Fingerprint is the key's SHA256 fingerprint (SHA256:…), as
	// ssh-keygen -l prints it.
	Fingerprint string
	Pos         Pos
}

// ReadKeys parses the operator's keys: those written in the file, then
// those of its authorized_keys file. Errors name the file and line.
func (o Operator) ReadKeys() ([]OperatorKey, error) {
	var out []OperatorKey
	for i, k := range o.Keys {
		pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k))
		if err != nil {
			return nil, fmt.Errorf("%s: keys[%d] of %s is not an SSH public key: %v", o.Pos, i, o.Name, err)
		}
		out = append(out, OperatorKey{Key: pk, Fingerprint: ssh.FingerprintSHA256(pk), Pos: o.Pos})
	}
	if o.AuthorizedKeys == "" {
		return out, nil
	}
	data, err := os.ReadFile(o.AuthorizedKeys)
	if err != nil {
		return nil, fmt.Errorf("reading the authorized_keys of %s: %w", o.Name, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(text))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: not an SSH public key (authorized_keys of %s): %v", o.AuthorizedKeys, line, o.Name, err)
		}
		out = append(out, OperatorKey{Key: pk, Fingerprint: ssh.FingerprintSHA256(pk), Pos: Pos{File: o.AuthorizedKeys, Line: line, Col: 1}})
	}
	return out, nil
}

// bastionDefaults fills what the bastion block left out.
func bastionDefaults(f *File, d *decoder) {
	b := f.Bastion
	if b == nil {
		return
	}
	if _, ok := d.set["bastion.max_sessions"]; !ok {
		b.MaxSessions = DefaultBastionSessions
	}
	if _, ok := d.set["bastion.max_sessions_per_key"]; !ok {
		b.MaxSessionsPerKey = DefaultBastionSessionsPerKey
	}
	if _, ok := d.set["bastion.idle_timeout"]; !ok {
		b.IdleTimeout = Duration(DefaultBastionIdleTimeout)
	}
	for i := range b.Operators {
		if b.Operators[i].Role == "" {
			b.Operators[i].Role = "viewer"
		}
	}
}

// bastion checks the bastion block once paths are resolved: the address,
// the host key if there is one, every key of every operator (a key of two
// people would make the audit lie about one of them), and the
// environments roles name.
func (v *validator) bastion() {
	b := v.f.Bastion
	if b == nil {
		return
	}
	top := v.at("bastion", Pos{File: v.d.file, Line: 1, Col: 1})
	if err := checkListen(b.Listen); err != nil {
		v.errs.add(v.at("bastion.listen", top), "bastion.listen: %v", err)
	}
	if b.HostKey != "" {
		v.hostKey(b.HostKey, v.at("bastion.host_key", top))
	}
	if b.MaxSessions < 1 {
		v.errs.add(v.at("bastion.max_sessions", top), "bastion.max_sessions must be at least 1")
	}
	if b.MaxSessionsPerKey < 1 {
		v.errs.add(v.at("bastion.max_sessions_per_key", top), "bastion.max_sessions_per_key must be at least 1")
	}
	if b.IdleTimeout <= 0 {
		v.errs.add(v.at("bastion.idle_timeout", top), "bastion.idle_timeout must be longer than zero")
	}
	var envs []string
	for _, e := range v.f.Environments {
		envs = append(envs, e.Name)
	}
	names := map[string]Pos{}
	owner := map[string]string{}
	for i, o := range b.Operators {
		p := fmt.Sprintf("bastion.operators[%d]", i)
		at := v.at(p+".name", o.Pos)
		name := strings.TrimSpace(o.Name)
		switch prev, dup := names[name]; {
		case name == "":
			v.errs.add(at, "%s.name must not be empty", p)
		case dup:
			v.errs.add(at, "duplicate operator name %q (first at %s)", name, prev)
		case len(name) > 64 || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f }):
			v.errs.add(at, "%s.name must be printable and at most 64 bytes", p)
		default:
			names[name] = at
		}
		if len(o.Keys) == 0 && o.AuthorizedKeys == "" {
			v.errs.add(v.at(p, o.Pos), "%s (%s) has neither keys nor authorized_keys: nobody could connect as them", p, o.Name)
		}
		for j, k := range o.Keys {
			kp := fmt.Sprintf("%s.keys[%d]", p, j)
			pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k))
			if err != nil {
				v.errs.add(v.at(kp, o.Pos), "%s is not an SSH public key (want a line of authorized_keys: ssh-ed25519 AAAA… comment): %v", kp, err)
				continue
			}
			v.keyOwner(owner, ssh.FingerprintSHA256(pk), o.Name, v.at(kp, o.Pos))
		}
		if o.AuthorizedKeys != "" {
			o.Pos = v.at(p+".authorized_keys", o.Pos)
			keys, err := Operator{Name: o.Name, AuthorizedKeys: o.AuthorizedKeys, Pos: o.Pos}.ReadKeys()
			if err != nil {
				v.errs.add(o.Pos, "%s.authorized_keys: %v", p, err)
			}
			for _, k := range keys {
				v.keyOwner(owner, k.Fingerprint, o.Name, k.Pos)
			}
		}
		envNames := make([]string, 0, len(o.Roles))
		for env := range o.Roles {
			envNames = append(envNames, env)
		}
		slices.Sort(envNames)
		for _, env := range envNames {
			if !slices.Contains(envs, env) {
				v.errs.add(v.at(p+".roles."+env, o.Pos), "%s.roles: unknown environment %q%s known environments: %s", p, env, didYouMeanSep(env, envs), strings.Join(envs, ", "))
			}
		}
	}
}

// keyOwner refuses a key given to two people.
func (v *validator) keyOwner(owner map[string]string, fp, name string, at Pos) {
	if prev, ok := owner[fp]; ok && prev != name {
		v.errs.add(at, "the key %s is %s's and %s's: a key must name one person", fp, prev, name)
		return
	}
	owner[fp] = name
}

// hostKey checks an existing host key: a private key only its owner can
// read. A missing one is generated at start.
func (v *validator) hostKey(path string, at Pos) {
	fi, err := os.Stat(path)
	if os.IsNotExist(err) {
		if dir := filepath.Dir(path); dir != "" {
			if st, err := os.Stat(dir); err == nil && !st.IsDir() {
				v.errs.add(at, "bastion.host_key: %s is not a directory, so the host key cannot be made there", dir)
			}
		}
		return
	}
	if err != nil {
		v.errs.add(at, "bastion.host_key: %v", err)
		return
	}
	if !fi.Mode().IsRegular() {
		v.errs.add(at, "bastion.host_key: %s is not a regular file", path)
		return
	}
	if fi.Mode().Perm()&0o077 != 0 {
		v.errs.add(at, "bastion.host_key: %s is readable by others (mode %04o): chmod 600 it", path, fi.Mode().Perm())
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		v.errs.add(at, "bastion.host_key: %v", err)
		return
	}
	if _, err := ssh.ParsePrivateKey(data); err != nil {
		v.errs.add(at, "bastion.host_key: %s is not an unencrypted SSH private key: %v", path, err)
	}
}

// checkListen accepts host:port with a port number.
func checkListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (e.g. 0.0.0.0:2222): %v", addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: the port must be a number from 0 to 65535", addr)
	}
	if host != "" && net.ParseIP(host) == nil && strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q: %q is not a host name or address", addr, host)
	}
	return nil
}
