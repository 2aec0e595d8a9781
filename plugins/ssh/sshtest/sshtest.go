// Package sshtest starts real OpenSSH servers as test hosts: each its own
// sshd with its own host key, authorized_keys and deploy root. As root,
// each host lives in its own network namespace behind a bridge the test
// creates (10.X.Y.0/24, a range no route of this machine uses), so a host
// can be cut off with `ip link set … down` and nothing can leak past the
// lab: the range is also blackholed in the machine's own routing table.
// Without root (or without ip netns) the hosts listen on loopback
// addresses 127.0.0.N instead, and Cut stops the host's sshd with SIGSTOP.
package sshtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Lab is a set of test hosts and what a client needs to reach them.
type Lab struct {
	t   testing.TB
	Dir string
	// KnownHosts lists every host's key; ClientKey is the private key
	// every host authorizes (no passphrase); User logs in.
	KnownHosts string
	ClientKey  string
	User       string
	// Netns says whether hosts are in their own network namespaces.
	Netns bool
	// Gateway is this machine's address as the hosts see it (the bridge
	// in netns mode, 127.0.0.1 otherwise): where a service on a host
	// reaches a server the test runs.
	Gateway string
	Hosts   []*Host
	// Jump is the bastion in front of Inner, when the lab was made with
	// one; Inner is reachable only through it (in netns mode).
	Jump  *Host
	Inner *Host

	id     string
	prefix string // "10.X.Y."
	sshd   string
	mu     sync.Mutex
	undo   []func()
}

// Host is one test host.
type Host struct {
	Name string
	Addr string // IP address
	Port int
	// Root is the host's deploy directory (on this machine's filesystem).
	Root    string
	HostKey string // private host key file
	ns      string
	link    string // root-side interface of its veth (netns mode)
	config  string
	passwd  string // the passwd file its sshd sees (as root)
	cmd     *exec.Cmd
	lab     *Lab
}

// Address is host:port.
func (h *Host) Address() string { return net.JoinHostPort(h.Addr, strconv.Itoa(h.Port)) }

// Options shape a lab.
type Options struct {
	Hosts int
	// Jump adds a bastion and one host behind it.
	Jump bool
}

// Start makes a lab with n hosts named web-1…web-n. It skips (or fails
// under RIPCORD_REQUIRE_TOOLS=1) without openssh-server and ssh-keygen.
func Start(t testing.TB, o Options) *Lab {
	t.Helper()
	sshd := requireTool(t, "sshd", "openssh-server")
	requireTool(t, "ssh-keygen", "openssh-client")
	id := randHex(3)
	dir, err := os.MkdirTemp("", "ripcord-sshlab-"+id+"-")
	if err != nil {
		t.Fatal(err)
	}
	// The owner's pid lets a later lab tell a lab whose test was killed
	// (its cleanup never ran) from one still in use.
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	l := &Lab{t: t, Dir: dir, sshd: sshd, User: u.Username, id: id}
	t.Cleanup(l.close)
	l.ClientKey = filepath.Join(dir, "client_ed25519")
	l.keygen(l.ClientKey)
	l.KnownHosts = filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(l.KnownHosts, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil && os.Geteuid() == 0 {
		t.Fatal(err)
	}
	// RIPCORD_SSHTEST_LOOPBACK=1 runs the loopback variant as root too, so
	// it can be checked where namespaces are available.
	l.Netns = os.Geteuid() == 0 && os.Getenv("RIPCORD_SSHTEST_LOOPBACK") != "1" && l.setupNetwork()
	if os.Geteuid() == 0 {
		// Each host gets its own login "deploy" (uid 0, /bin/sh, a home of
		// its own) through a passwd file only its sshd sees: the machine's
		// accounts are not touched, and root's interactive shell setup
		// (which bash reads even for ssh commands) stays out of the way.
		l.User = "deploy"
	}
	if l.Netns {
		l.Gateway = l.prefix + "1"
	} else {
		l.Gateway = "127.0.0.1"
	}
	for i := 1; i <= o.Hosts; i++ {
		l.Hosts = append(l.Hosts, l.addHost(fmt.Sprintf("web-%d", i), 10+i, true))
	}
	if o.Jump {
		l.Jump = l.addHost("bastion", 5, true)
		l.Inner = l.addHost("inner-1", 130, false)
	}
	for _, h := range l.All() {
		h.start()
	}
	return l
}

// All lists every host of the lab, the jump host and the host behind it
// included.
func (l *Lab) All() []*Host {
	hs := append([]*Host(nil), l.Hosts...)
	if l.Jump != nil {
		hs = append(hs, l.Jump, l.Inner)
	}
	return hs
}

func requireTool(t testing.TB, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin"} {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	if os.Getenv("RIPCORD_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s not found and RIPCORD_REQUIRE_TOOLS=1: install the Debian package %s", name, pkg)
	}
	t.Skipf("%s not found: install the Debian package %s to run this test", name, pkg)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (l *Lab) keygen(path string) {
	l.t.Helper()
	_ = os.Remove(path)
	_ = os.Remove(path + ".pub")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path).CombinedOutput(); err != nil {
		l.t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
}

func (l *Lab) ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (l *Lab) must(args ...string) {
	l.t.Helper()
	if err := l.ip(args...); err != nil {
		l.t.Fatal(err)
	}
}

func (l *Lab) onClose(f func()) {
	l.mu.Lock()
	l.undo = append(l.undo, f)
	l.mu.Unlock()
}

// setupNetwork makes the bridge in a /24 no route here uses and blackholes
// it, so traffic to a cut-off host is dropped here, never routed out.
func (l *Lab) setupNetwork() bool {
	if _, err := exec.LookPath("ip"); err != nil {
		return false
	}
	probe := "rcp" + l.id
	if l.ip("netns", "add", probe) != nil {
		return false
	}
	_ = l.ip("netns", "del", probe)
	sweepStale(l.ip)
	routes, _ := exec.Command("ip", "-4", "route", "show", "table", "all").Output()
	for range 50 {
		x, _ := rand.Int(rand.Reader, big.NewInt(50))
		y, _ := rand.Int(rand.Reader, big.NewInt(250))
		prefix := fmt.Sprintf("10.%d.%d.", 200+x.Int64(), y.Int64()+1)
		if !bytes.Contains(routes, []byte(prefix)) {
			l.prefix = prefix
			break
		}
	}
	if l.prefix == "" {
		return false
	}
	br := "rcb" + l.id
	l.must("link", "add", br, "type", "bridge")
	l.onClose(func() { _ = l.ip("link", "del", br) })
	l.must("addr", "add", l.prefix+"1/24", "dev", br)
	l.must("link", "set", br, "up")
	l.must("route", "add", "blackhole", l.prefix+"0/24", "metric", "4000")
	l.onClose(func() { _ = l.ip("route", "del", "blackhole", l.prefix+"0/24", "metric", "4000") })
	// The inner host's half of the range is reachable only through the
	// jump host: from here it is blackholed.
	l.must("route", "add", "blackhole", l.prefix+"128/25")
	l.onClose(func() { _ = l.ip("route", "del", "blackhole", l.prefix+"128/25") })
	return true
}

// addHost prepares a host: keys, root, sshd config and (netns mode) its
// namespace. onBridge hosts hang off the lab's bridge; the inner host hangs
// off the jump host only.
func (l *Lab) addHost(name string, octet int, onBridge bool) *Host {
	l.t.Helper()
	hd := filepath.Join(l.Dir, "hosts", name)
	h := &Host{Name: name, Root: filepath.Join(hd, "srv"), HostKey: filepath.Join(hd, "ssh_host_ed25519_key"), lab: l, config: filepath.Join(hd, "sshd_config")}
	for _, d := range []string{h.Root, hd} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			l.t.Fatal(err)
		}
	}
	l.keygen(h.HostKey)
	pub, err := os.ReadFile(l.ClientKey + ".pub")
	if err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hd, "authorized_keys"), pub, 0o600); err != nil {
		l.t.Fatal(err)
	}
	if l.Netns {
		h.ns = "rcn" + l.id + "-" + strconv.Itoa(octet)
		h.Addr, h.Port = l.prefix+strconv.Itoa(octet), 22
		l.must("netns", "add", h.ns)
		l.onClose(func() { deleteNetns(l.ip, h.ns) })
		l.must("-n", h.ns, "link", "set", "lo", "up")
		if onBridge {
			h.link = fmt.Sprintf("rcv%s%d", l.id, octet)
			l.must("link", "add", h.link, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
			l.onClose(func() { _ = l.ip("link", "del", h.link) })
			l.must("link", "set", h.link, "master", "rcb"+l.id)
			l.must("link", "set", h.link, "up")
			l.must("-n", h.ns, "addr", "add", h.Addr+"/24", "dev", "eth0")
			l.must("-n", h.ns, "link", "set", "eth0", "up")
		} else {
			// inner: a veth into the jump host's namespace, its own /25.
			j := l.Jump
			l.must("-n", j.ns, "link", "add", "inner0", "type", "veth", "peer", "name", "eth0", "netns", h.ns)
			l.must("-n", j.ns, "addr", "add", l.prefix+"129/25", "dev", "inner0")
			l.must("-n", j.ns, "link", "set", "inner0", "up")
			l.must("-n", h.ns, "addr", "add", h.Addr+"/25", "dev", "eth0")
			l.must("-n", h.ns, "link", "set", "eth0", "up")
		}
	} else {
		h.Addr = "127.0.0." + strconv.Itoa(octet)
		h.Port = freePort(l.t, h.Addr)
	}
	if os.Geteuid() == 0 {
		passwd, err := os.ReadFile("/etc/passwd")
		if err != nil {
			l.t.Fatal(err)
		}
		home := filepath.Join(hd, "home")
		if err := os.MkdirAll(home, 0o755); err != nil {
			l.t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(hd, "etc"), 0o755); err != nil {
			l.t.Fatal(err)
		}
		h.passwd = filepath.Join(hd, "etc", "passwd")
		passwd = append(passwd, fmt.Sprintf("deploy:x:0:0:ripcord test host %s:%s:/bin/sh\n", name, home)...)
		if err := os.WriteFile(h.passwd, passwd, 0o644); err != nil {
			l.t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`ListenAddress %s
HostKey %s
AuthorizedKeysFile %s
PidFile none
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowTcpForwarding yes
PermitTunnel no
X11Forwarding no
UseDNS no
MaxStartups 100
MaxSessions 100
Subsystem sftp internal-sftp
LogLevel VERBOSE
`, h.Address(), h.HostKey, filepath.Join(hd, "authorized_keys"))
	if err := os.WriteFile(h.config, []byte(cfg), 0o600); err != nil {
		l.t.Fatal(err)
	}
	hostPub, err := os.ReadFile(h.HostKey + ".pub")
	if err != nil {
		l.t.Fatal(err)
	}
	l.addKnown(h, hostPub)
	return h
}

func (l *Lab) addKnown(h *Host, pub []byte) {
	fields := strings.Fields(string(pub))
	line := fmt.Sprintf("[%s]:%d %s %s\n", h.Addr, h.Port, fields[0], fields[1])
	if h.Port == 22 {
		line = fmt.Sprintf("%s %s %s\n", h.Addr, fields[0], fields[1])
	}
	f, err := os.OpenFile(l.KnownHosts, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		l.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		l.t.Fatal(err)
	}
}

func freePort(t testing.TB, addr string) int {
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Exec returns a command run in the host's network namespace (netns
// mode) or plainly: how a test starts something "on" the host.
func (h *Host) Exec(name string, args ...string) *exec.Cmd {
	if h.ns != "" {
		return exec.Command("ip", append([]string{"netns", "exec", h.ns, name}, args...)...)
	}
	return exec.Command(name, args...)
}

func (h *Host) start() {
	t := h.lab.t
	t.Helper()
	log, err := os.Create(filepath.Join(filepath.Dir(h.config), "sshd.log"))
	if err != nil {
		t.Fatal(err)
	}
	h.cmd = h.Exec(h.lab.sshd, "-D", "-e", "-f", h.config)
	if h.passwd != "" {
		// /etc is covered as a whole (an overlay whose upper layer holds
		// only passwd, or a copy where overlays are not available), never
		// /etc/passwd alone: useradd, userdel and the like replace the
		// machine's passwd by renaming over it, and the kernel then
		// detaches a file mounted there in every other namespace — sshd
		// would see the machine's accounts, without deploy, and refuse
		// every login (the e2e permissions test adds users while these
		// run).
		h.cmd = h.Exec("unshare", "-m", "sh", "-c", `up=$(dirname "$1")
mkdir -p "$up-work"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$up,workdir=$up-work" /etc 2>/dev/null ||
  { rm -rf "$up-copy" && cp -a /etc "$up-copy" && cp "$1" "$up-copy/passwd" && mount --bind "$up-copy" /etc; } || exit 1
exec "$2" -D -e -f "$3"`, "sshd", h.passwd, h.lab.sshd, h.config)
	}
	h.cmd.Stdout, h.cmd.Stderr = log, log
	// Killed with the test process, even when its cleanup never runs.
	h.cmd.SysProcAttr = sshdProcAttr()
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start sshd for %s: %v", h.Name, err)
	}
	cmd := h.cmd
	h.lab.onClose(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGCONT)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		log.Close()
	})
	h.waitListening(10 * time.Second)
}

// waitListening waits until sshd accepts connections on the host's
// address (through its namespace when it has one).
func (h *Host) waitListening(within time.Duration) {
	t := h.lab.t
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var err error
		if h.ns != "" {
			// Ask the namespace's kernel whether sshd listens.
			out, _ := h.Exec("ss", "-Hltn", "src", h.Address()).Output()
			if len(bytes.TrimSpace(out)) == 0 {
				err = fmt.Errorf("nothing listens on %s", h.Address())
			}
		} else {
			var c net.Conn
			c, err = net.DialTimeout("tcp", h.Address(), time.Second)
			if err == nil {
				c.Close()
			}
		}
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(filepath.Dir(h.config), "sshd.log"))
			t.Fatalf("sshd of %s does not listen on %s within %s: %v\n%s", h.Name, h.Address(), within, err, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Cut makes the host unreachable: its link to the lab goes down, so
// packets to it vanish (no refusal, as with a dead network). In loopback
// mode its sshd and every session it forked are stopped with SIGSTOP
// instead: connections hang, which the same deadlines catch.
func (h *Host) Cut() {
	h.lab.t.Helper()
	if h.link != "" {
		h.lab.must("link", "set", h.link, "down")
		return
	}
	// The listener, and every session it forked (each in a session of
	// its own, so outside the listener's process group).
	for _, pid := range append([]int{h.cmd.Process.Pid}, descendants(h.cmd.Process.Pid)...) {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
}

// descendants lists the processes below pid, read from /proc.
func descendants(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	children := map[int][]int{}
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		p, _ := strconv.Atoi(filepath.Base(filepath.Dir(st)))
		if len(f) > 1 {
			pp, _ := strconv.Atoi(f[1])
			children[pp] = append(children[pp], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		c := children[queue[0]]
		queue = append(queue[1:], c...)
		out = append(out, c...)
	}
	return out
}

// Restore undoes Cut.
func (h *Host) Restore() {
	h.lab.t.Helper()
	if h.link != "" {
		h.lab.must("link", "set", h.link, "up")
		return
	}
	for _, pid := range append([]int{h.cmd.Process.Pid}, descendants(h.cmd.Process.Pid)...) {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
}

// NewHostKey gives the host a new host key and restarts its sshd: what a
// rebuilt (or impersonated) server looks like to a client.
func (h *Host) NewHostKey() {
	t := h.lab.t
	t.Helper()
	_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
	_ = h.cmd.Wait()
	h.lab.keygen(h.HostKey)
	h.start()
}

// deleteNetns stops every process still in a host's namespace (sessions
// whose client vanished with the network, services a test started) and
// deletes it.
func deleteNetns(ip func(...string) error, ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	_ = ip("netns", "del", ns)
}

// sweepStale removes what labs of killed test processes left behind: their
// namespaces (and the processes in them), bridge, links and blackhole
// routes. A lab is stale when its directory's owner is no longer running.
func sweepStale(ip func(...string) error) {
	out, _ := exec.Command("ip", "netns", "list").Output()
	stale := map[string]bool{}
	var nss []string
	for _, line := range strings.Split(string(out), "\n") {
		ns, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(ns, "rcn")
		id, _, found := strings.Cut(rest, "-")
		if !ok || !found || len(id) != 6 {
			continue
		}
		nss = append(nss, ns)
		if _, seen := stale[id]; !seen {
			stale[id] = !ownerAlive(id)
		}
	}
	for _, ns := range nss {
		if stale[ns[3:9]] {
			deleteNetns(ip, ns)
		}
	}
	for id, dead := range stale {
		if !dead {
			continue
		}
		br := "rcb" + id
		if addrs, err := exec.Command("ip", "-4", "-o", "addr", "show", "dev", br).Output(); err == nil {
			for _, f := range strings.Fields(string(addrs)) {
				if prefix, ok := strings.CutSuffix(f, ".1/24"); ok {
					_ = ip("route", "del", "blackhole", prefix+".0/24", "metric", "4000")
					_ = ip("route", "del", "blackhole", prefix+".128/25")
				}
			}
		}
		links, _ := exec.Command("ip", "-o", "link", "show").Output()
		for _, line := range strings.Split(string(links), "\n") {
			f := strings.Fields(line)
			if len(f) > 1 {
				name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
				if strings.HasPrefix(name, "rcv"+id) {
					_ = ip("link", "del", name)
				}
			}
		}
		_ = ip("link", "del", br)
		dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "ripcord-sshlab-"+id+"-*"))
		for _, d := range dirs {
			os.RemoveAll(d)
		}
	}
}

// ownerAlive says whether the test process that made lab id still runs.
func ownerAlive(id string) bool {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "ripcord-sshlab-"+id+"-*", "owner.pid"))
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && syscall.Kill(pid, 0) == nil {
			return true
		}
	}
	return false
}

func (l *Lab) close() {
	l.mu.Lock()
	undo := l.undo
	l.undo = nil
	l.mu.Unlock()
	for i := len(undo) - 1; i >= 0; i-- {
		undo[i]()
	}
	os.RemoveAll(l.Dir)
}

// Commands lists the command names of the processes running in the host's
// namespace; ok is false in loopback mode, where a host has no processes of
// its own to tell apart.
func (h *Host) Commands() (names []string, ok bool) {
	if h.ns == "" {
		return nil, false
	}
	out, _ := exec.Command("ip", "netns", "pids", h.ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if b, err := os.ReadFile(filepath.Join("/proc", f, "comm")); err == nil {
			names = append(names, strings.TrimSpace(string(b)))
		}
	}
	return names, true
}
