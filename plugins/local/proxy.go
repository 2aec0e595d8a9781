package local

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ReleaseHeader names the release that answered a request through the
// environment's public port.
const ReleaseHeader = "X-Ripcord-Release"

// proxy serves the environment's public port and splits requests between
// the stable release and the candidate. It runs in a process of its own
// (proxyproc.go), steered by the target through a control socket
// (proxyctl.go).
//
// The split is a smooth weighted round robin (as in nginx) rather than a
// random draw: it is deterministic, so any window of 100 consecutive
// requests holds exactly `weight` candidate requests, and a test or a
// person counting responses sees the configured share, not a sample of it.
type proxy struct {
	route     atomic.Pointer[route]
	transport *http.Transport
	srv       *http.Server
	ln        net.Listener

	mu               sync.Mutex // guards the round-robin counters
	stableN, candN   int
	countersForRoute *route
}

type backend struct {
	version string
	port    int
	rp      *httputil.ReverseProxy
}

type route struct {
	stable, candidate *backend
	weight            int
	spec              routeSpec
}

// newProxy serves ln, routing as spec says from the first request.
func newProxy(ln net.Listener, spec routeSpec) *proxy {
	p := &proxy{ln: ln, transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     30 * time.Second,
	}}
	p.setSpec(spec)
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p
}

func (p *proxy) backend(version string, port int) *backend {
	target := &url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.SetXForwarded()
		},
		Transport: p.transport,
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Set(ReleaseHeader, version)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set(ReleaseHeader, version)
			http.Error(w, "release "+version+" did not answer", http.StatusBadGateway)
		},
	}
	return &backend{version: version, port: port, rp: rp}
}

// set switches routing at once: requests after it use the new table.
func (p *proxy) set(rt *route) { p.route.Store(rt) }

// setSpec switches to the routing table a target sent. A release that
// keeps its port keeps its backend (and its idle connections).
func (p *proxy) setSpec(spec routeSpec) {
	old := p.route.Load()
	reuse := func(b *backendSpec) *backend {
		if b == nil {
			return nil
		}
		if old != nil {
			for _, have := range []*backend{old.stable, old.candidate} {
				if have != nil && have.version == b.Version && have.port == b.Port {
					return have
				}
			}
		}
		return p.backend(b.Version, b.Port)
	}
	p.set(&route{stable: reuse(spec.Stable), candidate: reuse(spec.Candidate), weight: spec.Weight, spec: spec})
}

// spec is the routing table in force.
func (p *proxy) spec() routeSpec {
	if rt := p.route.Load(); rt != nil {
		return rt.spec
	}
	return routeSpec{}
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := p.route.Load()
	if rt == nil || rt.stable == nil {
		http.Error(w, "no release is serving", http.StatusServiceUnavailable)
		return
	}
	p.pick(rt).rp.ServeHTTP(w, r)
}

func (p *proxy) pick(rt *route) *backend {
	if rt.candidate == nil || rt.weight <= 0 {
		return rt.stable
	}
	if rt.weight >= 100 {
		return rt.candidate
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.countersForRoute != rt {
		p.countersForRoute, p.stableN, p.candN = rt, 0, 0
	}
	p.candN += rt.weight
	p.stableN += 100 - rt.weight
	if p.candN > p.stableN {
		p.candN -= 100
		return rt.candidate
	}
	p.stableN -= 100
	return rt.stable
}

func (p *proxy) close() error {
	err := p.srv.Close()
	p.transport.CloseIdleConnections()
	return err
}
