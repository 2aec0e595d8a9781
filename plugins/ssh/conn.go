package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyPolicy says what to do with a host whose key known_hosts does not
// list. A key that differs from the listed one is always refused.
type HostKeyPolicy string

const (
	// HostKeyStrict refuses a host missing from known_hosts (the default).
	HostKeyStrict HostKeyPolicy = "strict"
	// HostKeyAcceptNew adds a host missing from known_hosts on first
	// contact, like OpenSSH's StrictHostKeyChecking=accept-new, and says so
	// in the target's log.
	HostKeyAcceptNew HostKeyPolicy = "accept-new"
)

// Auth is how every host is logged in to: a private key file, an agent, or
// both (the file's key is offered first).
type Auth struct {
	// IdentityFile is a private key in OpenSSH or PEM format.
	IdentityFile string
	// Passphrase decrypts IdentityFile when it is encrypted.
	Passphrase string
	// IdentityAgent is the socket of an ssh-agent ($SSH_AUTH_SOCK).
	IdentityAgent string
}

// endpoint is one SSH server to connect to.
type endpoint struct {
	name string // the host's name in the config, or "jump host" for a jump
	addr string // host:port
	user string
}

func (e endpoint) String() string { return fmt.Sprintf("host %s (%s)", e.name, e.addr) }

// pool keeps one SSH connection (and one SFTP session on it) per host and
// reuses it for every command, upload and tunnel; a broken connection is
// dropped and the next use dials again.
type pool struct {
	auth       []gossh.AuthMethod
	knownHosts string
	policy     HostKeyPolicy
	timeout    time.Duration // dial + handshake
	logf       func(string)

	khMu sync.Mutex // known_hosts is read and appended under this lock

	mu      sync.Mutex
	conns   map[string]*conn       // by user@addr
	dialing map[string]*sync.Mutex // one dial per host at a time
}

type conn struct {
	client *gossh.Client
	jump   *conn
	sftpMu sync.Mutex
	sftp   *sftp.Client
	dead   chan struct{}
}

func newPool(a Auth, knownHostsPath string, policy HostKeyPolicy, timeout time.Duration, logf func(string)) (*pool, error) {
	var methods []gossh.AuthMethod
	var signers []gossh.Signer
	if a.IdentityFile != "" {
		pem, err := os.ReadFile(a.IdentityFile)
		if err != nil {
			return nil, fmt.Errorf("read identity file: %w", err)
		}
		var key gossh.Signer
		if a.Passphrase != "" {
			key, err = gossh.ParsePrivateKeyWithPassphrase(pem, []byte(a.Passphrase))
		} else {
			key, err = gossh.ParsePrivateKey(pem)
		}
		var missing *gossh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("identity file %s is encrypted: give its passphrase as a ${ENV} reference", a.IdentityFile)
		}
		if err != nil {
			return nil, fmt.Errorf("identity file %s: %w", a.IdentityFile, err)
		}
		signers = append(signers, key)
	}
	if len(signers) > 0 {
		methods = append(methods, gossh.PublicKeys(signers...))
	}
	if a.IdentityAgent != "" {
		sock := a.IdentityAgent
		methods = append(methods, gossh.PublicKeysCallback(func() ([]gossh.Signer, error) {
			c, err := net.DialTimeout("unix", sock, 2*time.Second)
			if err != nil {
				return nil, fmt.Errorf("ssh-agent at %s: %w", sock, err)
			}
			// The agent connection lives as long as the signers are used
			// (the handshake); it is closed with the process.
			return agent.NewClient(c).Signers()
		}))
	}
	if len(methods) == 0 {
		return nil, errors.New("no way to log in: set identity_file, or identity_agent: ${SSH_AUTH_SOCK}")
	}
	if _, err := os.Stat(knownHostsPath); err != nil {
		if !errors.Is(err, os.ErrNotExist) || policy != HostKeyAcceptNew {
			return nil, fmt.Errorf("known_hosts %s: %w", knownHostsPath, err)
		}
		if err := os.MkdirAll(filepath.Dir(knownHostsPath), 0o700); err != nil {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
		if err := os.WriteFile(knownHostsPath, nil, 0o600); err != nil {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
	}
	return &pool{auth: methods, knownHosts: knownHostsPath, policy: policy, timeout: timeout, logf: logf, conns: map[string]*conn{}, dialing: map[string]*sync.Mutex{}}, nil
}

// hostKeyCallback checks a host's key against known_hosts, naming the
// host and the line in every refusal.
func (p *pool) hostKeyCallback(ep endpoint) gossh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key gossh.PublicKey) error {
		p.khMu.Lock()
		defer p.khMu.Unlock()
		check, err := knownhosts.New(p.knownHosts)
		if err != nil {
			return fmt.Errorf("read known_hosts %s: %w", p.knownHosts, err)
		}
		err = check(hostname, remote, key)
		if err == nil {
			return nil
		}
		fp := gossh.FingerprintSHA256(key)
		var revoked *knownhosts.RevokedError
		if errors.As(err, &revoked) {
			return fmt.Errorf("host key %s is revoked in %s line %d", fp, revoked.Revoked.Filename, revoked.Revoked.Line)
		}
		var ke *knownhosts.KeyError
		if !errors.As(err, &ke) {
			return err
		}
		if len(ke.Want) > 0 {
			w := ke.Want[0]
			return fmt.Errorf("host key mismatch — known_hosts line %d (%s) expects %s %s, the host offered %s %s; "+
				"if the host was rebuilt, check the new key and replace that line (ssh-keygen -R %s)",
				w.Line, w.Filename, w.Key.Type(), gossh.FingerprintSHA256(w.Key), key.Type(), fp, knownhosts.Normalize(hostname))
		}
		if p.policy != HostKeyAcceptNew {
			return fmt.Errorf("host key %s %s is not in known_hosts (%s): refusing to connect; "+
				"check the fingerprint and add the key (ssh-keyscan), or set host_key_policy: accept-new", key.Type(), fp, p.knownHosts)
		}
		line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key)
		f, err := os.OpenFile(p.knownHosts, os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("add host key to known_hosts: %w", err)
		}
		_, err = fmt.Fprintln(f, line)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("add host key to known_hosts: %w", err)
		}
		p.logf(fmt.Sprintf("%s: new host key %s %s added to %s (host_key_policy: accept-new)", ep, key.Type(), fp, p.knownHosts))
		return nil
	}
}

// get returns the connection to ep, dialling (through jump when set) if
// there is none or the last one broke.
func (p *pool) get(ctx context.Context, ep endpoint, jump *endpoint) (*conn, error) {
	key := ep.user + "@" + ep.addr
	p.mu.Lock()
	one := p.dialing[key]
	if one == nil {
		one = &sync.Mutex{}
		p.dialing[key] = one
	}
	p.mu.Unlock()
	// Callers for one host wait for each other here, so they share one
	// connection instead of racing to dial and closing each other's.
	one.Lock()
	defer one.Unlock()
	p.mu.Lock()
	c := p.conns[key]
	p.mu.Unlock()
	if c != nil {
		select {
		case <-c.dead:
		default:
			if c.alive(p.timeout) {
				return c, nil
			}
			p.drop(ep, c)
		}
	}
	var via *conn
	if jump != nil {
		j, err := p.get(ctx, *jump, nil)
		if err != nil {
			return nil, fmt.Errorf("through jump host %s: %w", jump.addr, err)
		}
		via = j
	}
	c, err := p.dial(ctx, ep, via)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.conns[key] = c
	p.mu.Unlock()
	return c, nil
}

func (p *pool) dial(ctx context.Context, ep endpoint, via *conn) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var raw net.Conn
	var err error
	if via != nil {
		raw, err = via.client.DialContext(ctx, "tcp", ep.addr)
	} else {
		var d net.Dialer
		raw, err = d.DialContext(ctx, "tcp", ep.addr)
	}
	if err != nil {
		err = unwrapDial(err)
		if strings.HasPrefix(err.Error(), "connect") {
			return nil, err
		}
		return nil, fmt.Errorf("connect: %w", err)
	}
	// The handshake gets the same deadline as the dial: a host that
	// accepts TCP but never speaks SSH must not hold the operation.
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	cfg := &gossh.ClientConfig{
		User: ep.user, Auth: p.auth, HostKeyCallback: p.hostKeyCallback(ep), Timeout: p.timeout,
	}
	cc, chans, reqs, err := gossh.NewClientConn(raw, ep.addr, cfg)
	if err != nil {
		raw.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ssh handshake: no answer within %s", p.timeout)
		}
		return nil, handshakeError(err)
	}
	_ = raw.SetDeadline(time.Time{})
	c := &conn{client: gossh.NewClient(cc, chans, reqs), jump: via, dead: make(chan struct{})}
	go func() {
		_ = c.client.Wait()
		close(c.dead)
	}()
	return c, nil
}

// handshakeError keeps the reason a person can act on.
func handshakeError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "ssh: handshake failed: ")
	if strings.Contains(msg, "unable to authenticate") {
		return fmt.Errorf("login refused (no configured key is authorized for this user): %s", msg)
	}
	return errors.New(msg)
}

func unwrapDial(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// alive asks the server to answer a keepalive within timeout: a host that
// was cut off keeps its TCP connection open here but never answers, and
// reusing that connection would hang the next command.
func (c *conn) alive(timeout time.Duration) bool {
	ok := make(chan bool, 1)
	go func() {
		_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
		ok <- err == nil
	}()
	select {
	case r := <-ok:
		return r
	case <-time.After(timeout):
		return false
	case <-c.dead:
		return false
	}
}

func (c *conn) close() {
	// The connection first: an SFTP session being opened holds sftpMu
	// until the server answers, which a closed connection makes happen.
	c.client.Close()
	c.sftpMu.Lock()
	if c.sftp != nil {
		c.sftp.Close()
		c.sftp = nil
	}
	c.sftpMu.Unlock()
}

// sftpClient returns the connection's SFTP session, opened once.
func (c *conn) sftpClient() (*sftp.Client, error) {
	c.sftpMu.Lock()
	defer c.sftpMu.Unlock()
	if c.sftp != nil {
		return c.sftp, nil
	}
	s, err := sftp.NewClient(c.client)
	if err != nil {
		return nil, fmt.Errorf("open sftp session: %w", err)
	}
	c.sftp = s
	return s, nil
}

// drop closes and forgets a connection that failed or hung, so the next
// use dials again (and a hung TCP connection to a cut-off host is not
// reused forever).
func (p *pool) drop(ep endpoint, c *conn) {
	p.forget(ep, c)
	c.close()
}

// forget stops handing out c for ep, so the next use dials again; c is
// closed by the caller.
func (p *pool) forget(ep endpoint, c *conn) {
	key := ep.user + "@" + ep.addr
	p.mu.Lock()
	if p.conns[key] == c {
		delete(p.conns, key)
	}
	p.mu.Unlock()
}

func (p *pool) closeAll() {
	p.mu.Lock()
	conns := p.conns
	p.conns = map[string]*conn{}
	p.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

// result is what a remote command did.
type result struct {
	stdout, stderr string
	code           int
}

// run runs script with sh on the host, fed through stdin so nothing in it
// (environment values included) appears in the host's process list. It
// returns when the command exits or ctx ends; a hung connection is
// closed.
func (c *conn) run(ctx context.Context, script string) (result, error) {
	return c.runCommand(ctx, "sh -s", script, false)
}

// runGroup is run for commands from the config (restart, a health
// command): where the host has setsid, the script runs in a process group
// of its own, and one given up on (its deadline passed, or the operation
// was cancelled) is killed with every process it started — closing the
// session or signalling its shell would leave them running. A service the
// script starts in a session of its own (setsid, systemd) is not in that
// group.
func (c *conn) runGroup(ctx context.Context, script string) (result, error) {
	header := `[ -n "$RIPCORD_PGROUP" ] && printf '` + pgroupPrefix + `%s\n' "$$" >&2; unset RIPCORD_PGROUP` + "\n"
	return c.runCommand(ctx, pgroupCommand, header+script, true)
}

const (
	pgroupCommand = `sh -c 'if command -v setsid >/dev/null 2>&1; then RIPCORD_PGROUP=1 exec setsid -w sh -s; else exec sh -s; fi'`
	pgroupPrefix  = "ripcord-pgroup "
)

func (c *conn) runCommand(ctx context.Context, command, script string, group bool) (result, error) {
	s, err := c.newSession(ctx)
	if err != nil {
		return result{}, err
	}
	defer s.Close()
	out, errb := &limited{}, &limited{}
	s.Stdout, s.Stderr = out, errb
	s.Stdin = strings.NewReader(script)
	done := make(chan error, 1)
	go func() { done <- s.Run(command) }()
	stderr := func() string {
		e := errb.String()
		if rest, ok := strings.CutPrefix(e, pgroupPrefix); ok && group {
			_, e, _ = strings.Cut(rest, "\n")
		}
		return e
	}
	select {
	case err = <-done:
	case <-ctx.Done():
		if pgid, ok := groupOf(errb.String()); ok && group {
			kctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, _ = c.run(kctx, fmt.Sprintf("kill -s KILL -- -%d 2>/dev/null", pgid))
			cancel()
		}
		_ = s.Signal(gossh.SIGKILL)
		s.Close()
		return result{stdout: out.String(), stderr: stderr(), code: -1}, ctx.Err()
	}
	r := result{stdout: out.String(), stderr: stderr()}
	var ee *gossh.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitStatus()
		err = nil
	default:
		return r, fmt.Errorf("run command: %w", err)
	}
	return r, nil
}

// newSession opens a session within ctx. The SSH library waits for the
// host's answer without a deadline: on a connection that went silent,
// the kill of a command given up on (its own 2 s) would wait for the
// whole operation's deadline. A connection that cannot open a session in
// time is hung, and is closed; the pool dials again.
func (c *conn) newSession(ctx context.Context) (*gossh.Session, error) {
	type opened struct {
		s   *gossh.Session
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		s, err := c.client.NewSession()
		ch <- opened{s, err}
	}()
	select {
	case o := <-ch:
		if o.err != nil {
			return nil, fmt.Errorf("open session: %w", o.err)
		}
		return o.s, nil
	case <-ctx.Done():
		_ = c.client.Close()
		go func() {
			if o := <-ch; o.s != nil {
				o.s.Close()
			}
		}()
		return nil, fmt.Errorf("open session: no answer: %w", ctx.Err())
	}
}

// groupOf reads the process group a runGroup script announced first on
// its stderr.
func groupOf(stderr string) (int, bool) {
	rest, ok := strings.CutPrefix(stderr, pgroupPrefix)
	if !ok {
		return 0, false
	}
	line, _, complete := strings.Cut(rest, "\n")
	n, err := strconv.Atoi(line)
	return n, complete && err == nil && n > 1
}

// limited keeps the first 64 KiB of a command's output: enough to say what
// went wrong, bounded for a chatty command. It may be read while the
// session still copies into it (a command given up on).
type limited struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *limited) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := 64<<10 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limited) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// splitUserHostPort reads "[user@]host[:port]" as OpenSSH's ProxyJump does.
func splitUserHostPort(s, defUser string) (endpoint, error) {
	user := defUser
	if u, rest, ok := strings.Cut(s, "@"); ok {
		user, s = u, rest
	}
	host, port := s, "22"
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	}
	if host == "" {
		return endpoint{}, fmt.Errorf("%q names no host", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return endpoint{}, fmt.Errorf("%q: port %q is not a port number", s, port)
	}
	return endpoint{name: "jump host", addr: net.JoinHostPort(host, port), user: user}, nil
}

// CheckJump checks a jump host setting, "[user@]host[:port]".
func CheckJump(s string) error {
	_, err := splitUserHostPort(s, "")
	return err
}
