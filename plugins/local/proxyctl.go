package local

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proxyRecordName is the proxy's record under the root.
const proxyRecordName = "proxy.json"

// maxSocketPath is the longest Unix socket path bind(2) takes everywhere
// (sun_path is 108 bytes on Linux, 104 on the BSDs, with the NUL).
const maxSocketPath = 103

// proxyStartTimeout bounds how long a new proxy process may take to answer.
const proxyStartTimeout = 10 * time.Second

// proxyCtl steers an environment's proxy process through its control
// socket: the process serves the public port whoever runs the target, and
// a target that starts finds it and adopts it instead of starting another.
type proxyCtl struct {
	root    string
	control string
	client  *http.Client
}

func newProxyCtl(root, control string) *proxyCtl {
	return &proxyCtl{root: root, control: control, client: &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", control)
		}},
	}}
}

// controlPath is where the proxy of root is steered from: under the root
// when the path fits a socket, else a short path named by a hash of root.
func controlPath(root string) string {
	p := filepath.Join(root, "run", "proxy.sock")
	if len(p) <= maxSocketPath {
		return p
	}
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(os.TempDir(), "ripcord-"+strconv.Itoa(os.Getuid()))
	return filepath.Join(dir, "proxy-"+hex.EncodeToString(sum[:8])+".sock")
}

func (c *proxyCtl) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://proxy"+path, rd)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		msg, _ := bufio.NewReader(resp.Body).ReadString('\n')
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %s %s", method, path, resp.Status, strings.TrimSpace(msg))
	}
	return resp, nil
}

// info asks the proxy who it is.
func (c *proxyCtl) info(ctx context.Context) (proxyInfo, error) {
	var in proxyInfo
	resp, err := c.do(ctx, http.MethodGet, "/info", nil)
	if err != nil {
		return in, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&in)
	return in, err
}

// setRoute hands the proxy a new routing table; requests after the answer
// use it.
func (c *proxyCtl) setRoute(ctx context.Context, rt routeSpec) error {
	resp, err := c.do(ctx, http.MethodPut, "/route", rt)
	if err != nil {
		return fmt.Errorf("the proxy did not take the new route: %w", err)
	}
	resp.Body.Close()
	return nil
}

// stop asks the proxy to finish the requests under way and exit, and
// waits until it no longer answers.
func (c *proxyCtl) stop(ctx context.Context) error {
	// A proxy already on its way out (stopped by someone else, or its
	// root removed) may drop the request: what counts is that it goes.
	resp, err := c.do(ctx, http.MethodPost, "/stop", nil)
	if err == nil {
		resp.Body.Close()
	}
	for {
		if _, ierr := c.info(ctx); ierr != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("stopping the proxy: %w", err)
			}
			return fmt.Errorf("the proxy did not stop: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// adoptOrStartProxy finds the proxy process of the root and adopts it
// when it serves the wanted address, or starts one. listen is
// 127.0.0.1:PORT (PORT 0: any, keeping the one a running proxy has).
func adoptOrStartProxy(root, listen string, route routeSpec) (*proxyCtl, proxyInfo, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), proxyStartTimeout)
	defer cancel()
	var note string
	if b, err := os.ReadFile(filepath.Join(root, proxyRecordName)); err == nil {
		var rec proxyRecord
		if json.Unmarshal(b, &rec) == nil && rec.Control != "" {
			c := newProxyCtl(root, rec.Control)
			in, err := c.info(ctx)
			switch {
			case err != nil:
				note = fmt.Sprintf("the proxy recorded in %s (pid %d) does not answer: started a new one", proxyRecordName, rec.Pid)
			case in.Root != root:
				note = fmt.Sprintf("the proxy recorded in %s serves %s, not this root: started a new one", proxyRecordName, in.Root)
			case in.Protocol != proxyProtocol || !sameListen(in.Listen, listen):
				// Another Ripcord's proxy, or the port changed: replace it.
				if err := c.stop(ctx); err != nil {
					return nil, proxyInfo{}, "", fmt.Errorf("replacing the proxy on %s: %w", in.Listen, err)
				}
				note = fmt.Sprintf("replaced the proxy on %s (protocol %d) with one on %s", in.Listen, in.Protocol, listen)
			default:
				return c, in, fmt.Sprintf("proxy on %s was still running (pid %d since %s): adopted", in.Listen, in.Pid, in.Started.Format(time.RFC3339)), nil
			}
		}
	}
	c, in, err := startProxy(ctx, root, listen, route)
	if err != nil {
		return nil, proxyInfo{}, "", err
	}
	if note == "" {
		note = fmt.Sprintf("proxy started on %s (pid %d)", in.Listen, in.Pid)
	}
	return c, in, note, nil
}

// sameListen reports whether a proxy listening on have serves want (port
// 0 in want takes any).
func sameListen(have, want string) bool {
	_, wp, err := net.SplitHostPort(want)
	if err == nil && wp == "0" {
		return true
	}
	return have == want
}

// startProxy starts a proxy process for root, routing as route says from
// its first request: this binary again (see proxyEnv), in a session of its
// own and outside the provider's process group, so neither the provider's
// nor the server's end (even kill -9) reaches it, output to run/proxy.log.
func startProxy(ctx context.Context, root, listen string, route routeSpec) (*proxyCtl, proxyInfo, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, proxyInfo{}, fmt.Errorf("finding the ripcord binary for the proxy: %w", err)
	}
	rt, err := json.Marshal(route)
	if err != nil {
		return nil, proxyInfo{}, err
	}
	control := controlPath(root)
	logPath := filepath.Join(root, "run", "proxy.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, proxyInfo{}, fmt.Errorf("opening the proxy log: %w", err)
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, proxyInfo{}, err
	}
	defer devnull.Close()
	start, _ := logf.Seek(0, 2)
	cmd := exec.Command(self, "--root", root, "--listen", listen, "--control", control, "--route", string(rt))
	// What ps shows: which environment's proxy this is.
	cmd.Args[0] = "ripcord-local-proxy"
	cmd.Env = append(os.Environ(), proxyEnv+"=1")
	cmd.Dir = root
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, proxyInfo{}, fmt.Errorf("starting the proxy: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	c := newProxyCtl(root, control)
	for {
		if in, err := c.info(ctx); err == nil && in.Pid == cmd.Process.Pid {
			return c, in, nil
		}
		select {
		case <-exited:
			return nil, proxyInfo{}, fmt.Errorf("the proxy did not start: %s", logSince(logPath, start))
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return nil, proxyInfo{}, fmt.Errorf("the proxy did not answer within %s: %s", proxyStartTimeout, logSince(logPath, start))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// logSince is what a log file got after offset, on one line.
func logSince(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < offset {
		return "(its log is unreadable)"
	}
	return strings.Join(strings.Fields(string(b[offset:])), " ")
}

// StopProxy stops the proxy process serving the environment at root, if
// one runs (the target leaves it running when it stops; this ends an
// environment's traffic for good).
func StopProxy(root string) error {
	b, err := os.ReadFile(filepath.Join(root, proxyRecordName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var rec proxyRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return fmt.Errorf("reading %s: %w", proxyRecordName, err)
	}
	c := newProxyCtl(root, rec.Control)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if in, err := c.info(ctx); err != nil || in.Root != root {
		return nil // gone already, or not this root's
	}
	return c.stop(ctx)
}
