package sentryingest

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"golang.org/x/net/netutil"
	"golang.org/x/sync/semaphore"
)

// Config configures one ingest. One ingest serves one service: every
// project key it accepts reports errors of Service.
type Config struct {
	// Listen is the TCP address, default 127.0.0.1:8765. Loopback by
	// default: the ingest has no TLS.
	Listen string
	// Service is the Ripcord service the counted errors belong to.
	Service string
	// Keys maps a Sentry project ID (the number at the end of the DSN)
	// to the DSN public key accepted for it. Requests for any other
	// project, or with another key, are answered 401 and not counted.
	Keys map[string]string
	// Envs maps an event's environment (as the SDK sends it) to a Ripcord
	// environment name. An environment not in the map is used as it is,
	// so by default an app's SENTRY_ENVIRONMENT must equal the Ripcord
	// environment name. Events without an environment are counted as
	// NoEnvironment unless Envs maps "" to an environment.
	Envs map[string]string
	// Environments are the Ripcord environments this ingest counts for:
	// their persisted counts are loaded at start and new ones stored.
	// Events for any other environment are counted apart, in memory only,
	// and every window pushed for a served environment carries a warning
	// naming them, so they are seen but never mixed in. Empty: every
	// environment is served (loaded on first use).
	Environments []string

	// Store persists counts; nil keeps them in memory only.
	Store CountStore

	MaxEnvelopeSize int64   // bytes, compressed and decompressed; default 1 MiB
	MaxEventSize    int     // bytes of one event; default 1 MiB
	MaxItems        int     // items per envelope; default 1000
	Rate            float64 // events per second per key; default 1000
	Burst           int     // events; default 2000
	// MaxCells caps distinct (bucket, project, release, level,
	// fingerprint) counters kept in memory; past it new fingerprints
	// count under one overflow issue (release totals stay exact).
	// Default 200,000 (about 10 MiB): the two hours kept of 10 s buckets
	// for 3 releases with 45 issues each.
	MaxCells int
	// MaxIssues caps distinct fingerprints kept per environment; further
	// ones count under one overflow issue. Default 2,000.
	MaxIssues int
	// MaxReleases caps the distinct releases one project key reports
	// within Window: events of further releases count under
	// OtherReleases (said once a window, in the log and on the window).
	// Releases marked deployed (MarkDeploy) always count on their own.
	// DSN keys are public in browser apps: this is what keeps a flood of
	// invented release names from growing memory. Default 30.
	MaxReleases int
	// MaxEnvironments caps the distinct environments per key within
	// Window, beyond the served ones; further ones count under
	// OtherEnvironments. Default 10.
	MaxEnvironments int
	// MaxInFlight bounds the request body bytes held at once, compressed
	// and decompressed; requests wait for room. Default 16 MiB.
	MaxInFlight int64
	// MaxConns bounds open connections; further ones wait in the accept
	// queue. Default 256.
	MaxConns int

	Retention  time.Duration // in memory; default 2h (the store keeps more)
	FlushEvery time.Duration // default 2s
	// Window is how far back WatchCounts windows reach; default 30m.
	Window time.Duration
	// TopIssues is how many issues each pushed window carries; default 5.
	TopIssues int
	// PushEvery is the least time between two pushes to one watcher;
	// default 250ms.
	PushEvery time.Duration

	// Logf receives operational problems (a failed flush); default none.
	// It is never given secrets.
	Logf func(format string, args ...any)
	// Now is the clock; tests replace it.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8765"
	}
	if c.MaxEnvelopeSize <= 0 {
		c.MaxEnvelopeSize = DefaultMaxEnvelopeSize
	}
	if c.MaxEventSize <= 0 {
		c.MaxEventSize = DefaultMaxEventSize
	}
	if c.MaxItems <= 0 {
		c.MaxItems = DefaultMaxItems
	}
	if c.Rate <= 0 {
		c.Rate = DefaultRate
	}
	if c.Burst <= 0 {
		c.Burst = DefaultBurst
	}
	if c.MaxCells <= 0 {
		c.MaxCells = 200_000
	}
	if c.MaxIssues <= 0 {
		c.MaxIssues = 2_000
	}
	if c.MaxReleases <= 0 {
		c.MaxReleases = 30
	}
	if c.MaxEnvironments <= 0 {
		c.MaxEnvironments = 10
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 16 << 20
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 256
	}
	if c.Retention <= 0 {
		c.Retention = 2 * time.Hour
	}
	if c.FlushEvery <= 0 {
		c.FlushEvery = 2 * time.Second
	}
	if c.Window <= 0 {
		c.Window = 30 * time.Minute
	}
	if c.TopIssues <= 0 {
		c.TopIssues = 5
	}
	if c.PushEvery <= 0 {
		c.PushEvery = 250 * time.Millisecond
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Ingest is the embedded Sentry-compatible ingest: an http.Handler that
// counts error events, and a core.ErrorSource over those counts.
type Ingest struct {
	cfg      Config
	counts   *counter
	buckets  map[string]*tokenBucket // by project ID
	names    map[string]*keyNames    // by project ID
	served   map[string]bool         // environments counted for; nil: all
	inFlight *semaphore.Weighted
	watch    *watchers

	deployMu sync.Mutex
	deploys  map[core.Ref][]DeployMarker

	flushMu   sync.Mutex // one flush at a time
	stop      chan struct{}
	stopOnce  sync.Once
	flusherWG sync.WaitGroup

	srvMu sync.Mutex
	srv   *http.Server
}

var _ core.ErrorSource = (*Ingest)(nil)

// New builds an ingest, loads the persisted counts of cfg.Environments and
// starts the background flusher. Serve it with Listen or mount it as an
// http.Handler; Close flushes and stops it.
func New(ctx context.Context, cfg Config) (*Ingest, error) {
	cfg.setDefaults()
	if cfg.Service == "" {
		return nil, errors.New("sentry ingest: service is required")
	}
	if len(cfg.Keys) == 0 {
		return nil, errors.New("sentry ingest: at least one project key is required")
	}
	ing := &Ingest{
		cfg:      cfg,
		counts:   newCounter(cfg.Retention, cfg.MaxCells, cfg.MaxIssues),
		buckets:  map[string]*tokenBucket{},
		names:    map[string]*keyNames{},
		inFlight: semaphore.NewWeighted(cfg.MaxInFlight),
		watch:    newWatchers(),
		deploys:  map[core.Ref][]DeployMarker{},
		stop:     make(chan struct{}),
	}
	if len(cfg.Environments) > 0 {
		ing.served = map[string]bool{}
		for _, e := range cfg.Environments {
			ing.served[e] = true
		}
	}
	now := cfg.Now()
	for project, key := range cfg.Keys {
		if _, err := strconv.ParseUint(project, 10, 64); err != nil {
			return nil, fmt.Errorf("sentry ingest: project ID %q is not a number", project)
		}
		if key == "" {
			return nil, fmt.Errorf("sentry ingest: project %s has an empty key", project)
		}
		ing.buckets[project] = newTokenBucket(cfg.Rate, cfg.Burst, now)
		ing.names[project] = newKeyNames()
	}
	for _, env := range cfg.Environments {
		if err := ing.counts.load(ctx, cfg.Store, core.Ref{Service: cfg.Service, Env: env}, now); err != nil {
			return nil, fmt.Errorf("sentry ingest: %w", err)
		}
	}
	ing.flusherWG.Add(1)
	go ing.flusher()
	return ing, nil
}

// Listen starts serving on cfg.Listen and returns the bound address (useful
// with port 0).
func (ing *Ingest) Listen() (net.Addr, error) {
	ln, err := net.Listen("tcp", ing.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("sentry ingest: listening on %s: %w", ing.cfg.Listen, err)
	}
	addr := ln.Addr()
	ln = netutil.LimitListener(ln, ing.cfg.MaxConns)
	srv := &http.Server{
		Handler:           ing,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	ing.srvMu.Lock()
	ing.srv = srv
	ing.srvMu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			ing.cfg.Logf("sentry ingest: serving: %v", err)
		}
	}()
	return addr, nil
}

// Close stops the server (if Listen started one), stops the flusher and
// writes every unflushed count to the store.
func (ing *Ingest) Close(ctx context.Context) error {
	var errs []error
	ing.srvMu.Lock()
	srv := ing.srv
	ing.srvMu.Unlock()
	if srv != nil {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("sentry ingest: shutting down: %w", err))
		}
	}
	ing.stopOnce.Do(func() { close(ing.stop) })
	ing.flusherWG.Wait()
	ing.watch.closeAll()
	if err := ing.Flush(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Flush writes changed buckets to the store now.
func (ing *Ingest) Flush(ctx context.Context) error {
	if ing.cfg.Store == nil {
		ing.counts.takeDirty()
		return nil
	}
	ing.flushMu.Lock()
	defer ing.flushMu.Unlock()
	rows := slices.DeleteFunc(ing.counts.takeDirty(), func(r core.ErrorCount) bool {
		return !ing.serves(r.Ref.Env) // counted apart: never stored as an environment's baseline
	})
	if len(rows) == 0 {
		return nil
	}
	if err := ing.cfg.Store.PutErrorCounts(ctx, rows); err != nil {
		ing.counts.markDirty(rows)
		return fmt.Errorf("sentry ingest: writing %d error counts: %w", len(rows), err)
	}
	return nil
}

func (ing *Ingest) flusher() {
	defer ing.flusherWG.Done()
	t := time.NewTicker(ing.cfg.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ing.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := ing.Flush(ctx); err != nil {
				ing.cfg.Logf("%v", err)
			}
			cancel()
			ing.counts.prune(ing.cfg.Now())
		}
	}
}

// ServeHTTP accepts POST /api/<project>/envelope/ and the legacy
// POST /api/<project>/store/ (trailing slash optional).
func (ing *Ingest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	project, endpoint, ok := parsePath(r.URL.Path)
	if !ok {
		writeDetail(w, http.StatusNotFound, "not found")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeDetail(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if !ing.authorised(project, r) {
		writeDetail(w, http.StatusUnauthorized, "missing or wrong sentry_key")
		return
	}
	bucket := ing.buckets[project]
	if empty, secs := bucket.empty(ing.cfg.Now()); empty {
		writeRateLimited(w, secs)
		return
	}
	// Room for the body, compressed and decompressed, before reading it:
	// many clients sending large bodies at once wait rather than grow
	// memory.
	need := min(max(r.ContentLength, 0), ing.cfg.MaxEnvelopeSize)
	if r.ContentLength < 0 {
		need = ing.cfg.MaxEnvelopeSize
	}
	if enc := r.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		need += ing.cfg.MaxEnvelopeSize
	}
	need = max(need, 4<<10)
	if err := ing.inFlight.Acquire(r.Context(), need); err != nil {
		return // the client went away
	}
	defer ing.inFlight.Release(need)
	r.Body = http.MaxBytesReader(w, r.Body, ing.cfg.MaxEnvelopeSize+1)
	body, err := readBody(r, ing.cfg.MaxEnvelopeSize)
	if err != nil {
		writeError(w, err)
		return
	}
	var events []Event
	var id string
	if endpoint == "store" {
		if len(body) > ing.cfg.MaxEventSize {
			writeError(w, tooLarge("event of %d bytes (limit %d)", len(body), ing.cfg.MaxEventSize))
			return
		}
		ev, isTx, err := ParseEvent(body)
		if err != nil {
			writeError(w, err)
			return
		}
		id = ev.EventID
		if !isTx {
			events = append(events, ev)
		}
	} else {
		env, err := ParseEnvelope(body, ParseLimits{MaxItems: ing.cfg.MaxItems, MaxEventSize: ing.cfg.MaxEventSize})
		if err != nil {
			writeError(w, err)
			return
		}
		id = env.EventID
		for i, it := range env.Items {
			if it.Type != "event" {
				continue // transactions, sessions, attachments, client reports...
			}
			// ParseEnvelope checked that event items are valid UTF-8.
			ev, _, err := parseEvent(it.Payload, true)
			if err != nil {
				writeError(w, fmt.Errorf("item %d: %w", i, err))
				return
			}
			if id == "" {
				id = ev.EventID
			}
			events = append(events, ev)
		}
	}
	for i, ev := range events {
		if err := checkNames(ev); err != nil {
			writeError(w, fmt.Errorf("event %d: %w", i, err))
			return // nothing from this request counts
		}
	}
	now := ing.cfg.Now()
	if len(events) > 0 {
		if ok, secs := bucket.take(len(events), now); !ok {
			writeRateLimited(w, secs)
			return
		}
	}
	ing.count(r.Context(), project, events, now)
	w.Header().Set("Content-Type", "application/json")
	if id == "" {
		_, _ = w.Write([]byte("{}"))
		return
	}
	_, _ = w.Write(idResponse(id))
}

// idResponse is what json.NewEncoder(w).Encode(map[string]string{"id": id})
// writes, without the map and the reflection for the usual hex ID.
func idResponse(id string) []byte {
	b := make([]byte, 0, len(id)+10)
	b = append(b, `{"id":`...)
	if plainJSONString(id) {
		b = append(append(append(b, '"'), id...), '"')
	} else {
		q, _ := json.Marshal(id) // escapes as the Encoder does
		b = append(b, q...)
	}
	return append(b, "}\n"...)
}

// plainJSONString reports whether s needs no escaping in JSON, with
// encoding/json's HTML escaping of <, > and &.
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

func (ing *Ingest) count(ctx context.Context, project string, events []Event, now time.Time) {
	for _, ev := range events {
		if !ev.Counted() {
			continue
		}
		ref := ing.admit(project, &ev, now)
		served := ing.serves(ref.Env)
		store := ing.cfg.Store
		if !served {
			store = nil // counted apart, in memory: never mixed into an environment's baseline
		}
		if err := ing.counts.load(ctx, store, ref, now); err != nil {
			ing.cfg.Logf("sentry ingest: %v (counting without the persisted baseline)", err)
		}
		ing.counts.add(project, ref, ev, now)
		ing.watch.notify(ref)
		if !served {
			for env := range ing.served {
				ing.watch.notify(core.Ref{Service: ing.cfg.Service, Env: env}) // its windows carry the warning
			}
		}
	}
}

// serves reports whether the ingest counts for env.
func (ing *Ingest) serves(env string) bool { return ing.served == nil || ing.served[env] }

// admit decides the environment and release an event is counted under:
// its own, unless its key already reported MaxEnvironments (beyond the
// served ones) or MaxReleases others within Window.
func (ing *Ingest) admit(project string, ev *Event, now time.Time) core.Ref {
	env, mapped := ing.cfg.Envs[ev.Environment]
	if !mapped {
		env = ev.Environment
		if env == "" {
			env = NoEnvironment
		}
	}
	kn := ing.names[project]
	kn.mu.Lock()
	defer kn.mu.Unlock()
	if !mapped && !ing.serves(env) && !kn.envs.admit(env, now, ing.cfg.MaxEnvironments, ing.cfg.Window) {
		if kn.envs.firstRefusal(now, ing.cfg.Window) {
			ing.cfg.Logf("sentry ingest: project %s reported more than %d environments in %s; events of further ones (first: %q) count under %s",
				project, ing.cfg.MaxEnvironments, ing.cfg.Window, env, OtherEnvironments)
		}
		env = OtherEnvironments
	}
	ref := core.Ref{Service: ing.cfg.Service, Env: env}
	if !ing.deployed(ref, ev.Release) && !kn.releases.admit(ev.Release, now, ing.cfg.MaxReleases, ing.cfg.Window) {
		if kn.releases.firstRefusal(now, ing.cfg.Window) {
			ing.cfg.Logf("sentry ingest: project %s reported more than %d releases in %s; events of further ones (first: %q) count under %s",
				project, ing.cfg.MaxReleases, ing.cfg.Window, ev.Release, OtherReleases)
		}
		ev.Release = OtherReleases
	}
	return ref
}

// authorised checks the DSN public key from X-Sentry-Auth or the
// sentry_key query parameter; when both are given both must match.
func (ing *Ingest) authorised(project string, r *http.Request) bool {
	want, ok := ing.cfg.Keys[project]
	if !ok {
		return false
	}
	var got []string
	if k := authHeaderKey(r.Header.Get("X-Sentry-Auth")); k != "" {
		got = append(got, k)
	}
	if k := r.URL.Query().Get("sentry_key"); k != "" {
		got = append(got, k)
	}
	if len(got) == 0 {
		return false
	}
	for _, k := range got {
		if subtle.ConstantTimeCompare([]byte(k), []byte(want)) != 1 {
			return false
		}
	}
	return true
}

// authHeaderKey reads sentry_key from "Sentry sentry_version=7,
// sentry_client=x, sentry_key=KEY".
func authHeaderKey(h string) string {
	h = strings.TrimSpace(h)
	if len(h) < 7 || !strings.EqualFold(h[:7], "sentry ") {
		return ""
	}
	for part := range strings.SplitSeq(h[7:], ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && strings.TrimSpace(k) == "sentry_key" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// parsePath matches /api/<digits>/(envelope|store)[/].
func parsePath(p string) (project, endpoint string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/api/")
	if !ok {
		return "", "", false
	}
	project, endpoint, ok = strings.Cut(strings.TrimSuffix(rest, "/"), "/")
	if !ok || project == "" || (endpoint != "envelope" && endpoint != "store") {
		return "", "", false
	}
	for _, c := range project {
		if c < '0' || c > '9' {
			return "", "", false
		}
	}
	return project, endpoint, true
}

func writeRateLimited(w http.ResponseWriter, secs int) {
	s := strconv.Itoa(secs)
	w.Header().Set("Retry-After", s)
	// sentry-go reads the category list ("error") and backs off error
	// events on its own until the deadline, without further requests.
	w.Header().Set("X-Sentry-Rate-Limits", s+":error:key")
	writeDetail(w, http.StatusTooManyRequests, "event budget exceeded")
}

func writeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrTooLarge):
		writeDetail(w, http.StatusRequestEntityTooLarge, err.Error())
	case errors.Is(err, errUnsupportedEncoding):
		writeDetail(w, http.StatusUnsupportedMediaType, err.Error())
	case errors.Is(err, ErrMalformed):
		writeDetail(w, http.StatusBadRequest, err.Error())
	default:
		// A body that could not be read: the client went away or sent a
		// broken chunked encoding.
		writeDetail(w, http.StatusBadRequest, "unreadable body")
	}
}

func writeDetail(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"detail": detail})
}
