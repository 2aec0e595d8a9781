package local

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// proxyProtocol versions the control conversation between a target and
// its proxy process. A proxy left by a Ripcord speaking another version is
// replaced (a brief gap on the port) rather than adopted.
const proxyProtocol = 1

// routeSpec is a routing table on the wire: which release serves, and the
// candidate's share.
type routeSpec struct {
	Stable    *backendSpec `json:"stable,omitempty"`
	Candidate *backendSpec `json:"candidate,omitempty"`
	Weight    int          `json:"weight,omitempty"`
}

// backendSpec is one release's private address.
type backendSpec struct {
	Version string `json:"version"`
	Port    int    `json:"port"`
}

// proxyInfo is what a proxy says about itself.
type proxyInfo struct {
	Protocol int       `json:"protocol"`
	Pid      int       `json:"pid"`
	Root     string    `json:"root"`
	Listen   string    `json:"listen"`
	Started  time.Time `json:"started"`
	Route    routeSpec `json:"route"`
}

// rootCheckEvery is how often a proxy checks that its root still exists.
const rootCheckEvery = 5 * time.Second

// proxyRecord is <root>/proxy.json: where a restarted target finds the
// proxy process of its environment.
type proxyRecord struct {
	Protocol int       `json:"protocol"`
	Pid      int       `json:"pid"`
	Listen   string    `json:"listen"`
	Control  string    `json:"control"`
	Started  time.Time `json:"started"`
}

// proxyEnv, set to 1, makes any binary that links this package run as a
// proxy process (see init): the target starts its proxy by running its
// own binary again, whatever that binary is — ripcord, or a test binary —
// so the proxy is always the code of the Ripcord that started it.
const proxyEnv = "RIPCORD_LOCAL_PROXY"

func init() {
	if os.Getenv(proxyEnv) == "1" {
		os.Exit(ProxyMain(os.Args[1:]))
	}
}

// ProxyOptions configure a proxy process.
type ProxyOptions struct {
	// Root is the environment's root; the process works there and records
	// itself in <Root>/proxy.json.
	Root string
	// Listen is the public address, 127.0.0.1:PORT (PORT 0 picks one).
	Listen string
	// Control is the Unix socket the target steers it through.
	Control string
	// Route is the routing table to start with.
	Route routeSpec
}

// ProxyMain runs a proxy process from its command line (--root R
// --listen A --control S [--route JSON]) until SIGTERM, SIGINT or a stop
// request, and returns its exit status.
func ProxyMain(args []string) int {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	var o ProxyOptions
	var route string
	fs.StringVar(&o.Root, "root", "", "the environment's root")
	fs.StringVar(&o.Listen, "listen", "", "public address")
	fs.StringVar(&o.Control, "control", "", "control socket")
	fs.StringVar(&route, "route", "", "routing table to start with (JSON)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if route != "" {
		if err := json.Unmarshal([]byte(route), &o.Route); err != nil {
			fmt.Fprintln(os.Stderr, "local proxy: --route:", err)
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := ServeProxy(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "local proxy:", err)
		return 1
	}
	return 0
}

// ServeProxy serves an environment's public port until ctx ends or the
// target asks it to stop. It is a process of its own so that traffic does
// not depend on the provider, the server or any console: they come and go,
// and the next target adopts it through its control socket.
func ServeProxy(ctx context.Context, o ProxyOptions) error {
	if o.Root == "" || o.Listen == "" || o.Control == "" {
		return errors.New("--root, --listen and --control are required")
	}
	CloseInheritedFiles()
	// The control socket and the record are this account's alone.
	syscall.Umask(0o077)
	if err := os.Chdir(o.Root); err != nil {
		return fmt.Errorf("entering the environment's root: %w", err)
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listen on the public port %s: %w", o.Listen, err)
	}
	p := newProxy(ln, o.Route)
	if err := os.MkdirAll(filepath.Dir(o.Control), 0o700); err != nil {
		return fmt.Errorf("creating the control socket's directory: %w", err)
	}
	_ = os.Remove(o.Control) // a dead proxy's; a live one holds the port
	cl, err := net.Listen("unix", o.Control)
	if err != nil {
		p.close()
		return fmt.Errorf("listen on the control socket %s: %w", o.Control, err)
	}
	started := time.Now().UTC()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	mux := http.NewServeMux()
	info := func() proxyInfo {
		return proxyInfo{Protocol: proxyProtocol, Pid: os.Getpid(), Root: o.Root, Listen: ln.Addr().String(), Started: started, Route: p.spec()}
	}
	mux.HandleFunc("GET /info", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(info())
	})
	mux.HandleFunc("PUT /route", func(w http.ResponseWriter, r *http.Request) {
		var rt routeSpec
		if err := json.NewDecoder(r.Body).Decode(&rt); err != nil {
			http.Error(w, "route: "+err.Error(), http.StatusBadRequest)
			return
		}
		p.setSpec(rt)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /stop", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		stop()
	})
	ctl := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = ctl.Serve(cl) }()

	rec := proxyRecord{Protocol: proxyProtocol, Pid: os.Getpid(), Listen: ln.Addr().String(), Control: o.Control, Started: started}
	recPath := filepath.Join(o.Root, proxyRecordName)
	if err := writeJSONAtomic(recPath, rec); err != nil {
		_ = ctl.Close()
		p.close()
		return fmt.Errorf("recording the proxy: %w", err)
	}
	fmt.Fprintf(os.Stderr, "local proxy (pid %d) serving %s, steered through %s\n", os.Getpid(), ln.Addr(), o.Control)

	// An environment whose root was removed has nothing left to serve.
	go func() {
		t := time.NewTicker(rootCheckEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if _, err := os.Stat(o.Root); errors.Is(err, os.ErrNotExist) {
				fmt.Fprintf(os.Stderr, "local proxy: %s was removed: stopping\n", o.Root)
				stop()
				return
			}
		}
	}()

	<-ctx.Done()
	// Requests under way finish; new connections are refused from here.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = p.srv.Shutdown(sctx)
	p.transport.CloseIdleConnections()
	_ = ctl.Close()
	if b, err := os.ReadFile(recPath); err == nil {
		var now proxyRecord
		if json.Unmarshal(b, &now) == nil && now.Pid == os.Getpid() {
			_ = os.Remove(recPath)
		}
	}
	_ = os.Remove(o.Control)
	return nil
}
