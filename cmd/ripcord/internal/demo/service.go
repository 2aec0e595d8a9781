// Package demo is the small real world `ripcord demo` opens the console on:
// a demo service reporting to Sentry, steady traffic, a SQLite backup job,
// and a workspace (ripcord.yaml, build script, backup history) tying them
// to the built-in providers. Everything runs from the ripcord binary alone.
package demo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/getsentry/sentry-go"
)

// DefectiveVersion is the release whose checkout is broken, so promoting
// it shows an error spike the console can catch.
const DefectiveVersion = "v1.5.0"

// Failure rates of /checkout: the defective release fails often, every
// other release rarely, so the baseline has errors to compare against.
const (
	defectRate   = 0.30
	baselineRate = 0.02
)

// shutdownGrace is how long requests in flight get once the service is
// told to stop; the events still queued are flushed after it.
const shutdownGrace = 2 * time.Second

// TypeError is the defective release's checkout bug. Its type name is what
// Sentry shows as the exception type.
type TypeError struct{ Msg string }

func (e TypeError) Error() string { return e.Msg }

// TimeoutError is the payment gateway being slow now and then, in every
// release.
type TimeoutError struct{ Msg string }

func (e TimeoutError) Error() string { return e.Msg }

// ServiceOptions configure one demo service process.
type ServiceOptions struct {
	// Name is the service this process is ("api", "web"), in its answers
	// and log lines; default api.
	Name string
	// Port is the port on 127.0.0.1; 0 picks a free one (see Ready).
	Port int
	// Version is the release this process runs, reported to Sentry.
	Version string
	// DSN is the Sentry DSN; empty reports nothing.
	DSN string
	// Environment is the Sentry environment, the Ripcord environment name.
	Environment string
	// DataDir holds the orders database shared by every process of the
	// environment.
	DataDir string
	// Seed fixes the random source deciding which checkouts fail; 0 seeds
	// it randomly, so each process fails differently.
	Seed uint64
	// Log receives a few lines about the process (never the DSN); nil
	// discards them.
	Log io.Writer
	// Ready, when set, is called with the listening address once requests
	// are accepted.
	Ready func(addr string)
}

// service is one running demo service.
type service struct {
	name    string
	version string
	db      *sql.DB
	hub     *sentry.Hub
	log     io.Writer

	mu   sync.Mutex
	rand *rand.Rand
}

// Service runs the demo service until ctx ends, then stops accepting
// requests and flushes the events still queued for Sentry.
func Service(ctx context.Context, o ServiceOptions) error {
	if o.Version == "" {
		return errors.New("starting the demo service: a version is required")
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Name == "" {
		o.Name = "api"
	}
	client, err := newSentryClient(o)
	if err != nil {
		return err
	}
	defer client.Close()
	db, err := openOrders(ctx, filepath.Join(o.DataDir, OrdersFile))
	if err != nil {
		return fmt.Errorf("starting the demo service: %w", err)
	}
	defer db.Close()
	s := &service{
		name: o.Name, version: o.Version, db: db, log: o.Log,
		hub:  sentry.NewHub(client, sentry.NewScope()),
		rand: newRand(o.Seed),
	}
	err = s.serve(ctx, o)
	// Events captured just before the end are still queued: send them, or
	// the spike that made someone stop this release goes unseen.
	client.Flush(3 * time.Second)
	return err
}

func newSentryClient(o ServiceOptions) (*sentry.Client, error) {
	client, err := sentry.NewClient(sentry.ClientOptions{
		Dsn:         o.DSN,
		Release:     o.Version,
		Environment: o.Environment,
		SampleRate:  1,
		BeforeSend:  readableExceptionTypes,
	})
	if err != nil {
		// The SDK's error quotes the DSN, which carries the project key.
		return nil, errors.New("starting the demo service: the Sentry DSN is not valid")
	}
	return client, nil
}

// readableExceptionTypes drops the Go package from exception types
// ("demo.TypeError" becomes "TypeError"), which is how people name them.
func readableExceptionTypes(ev *sentry.Event, _ *sentry.EventHint) *sentry.Event {
	for i := range ev.Exception {
		t := strings.TrimPrefix(ev.Exception[i].Type, "*")
		if dot := strings.LastIndex(t, "."); dot >= 0 {
			t = t[dot+1:]
		}
		ev.Exception[i].Type = t
	}
	return ev
}

func newRand(seed uint64) *rand.Rand {
	if seed == 0 {
		seed = rand.Uint64()
	}
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// serve listens and answers requests until ctx ends.
func (s *service) serve(ctx context.Context, o ServiceOptions) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(o.Port)))
	if err != nil {
		return fmt.Errorf("starting the demo service: listening on port %d: %w", o.Port, err)
	}
	srv := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(s.log, "%s %s listening on %s (environment %q, data %s)\n", s.name, s.version, ln.Addr(), o.Environment, o.DataDir)
	if o.Ready != nil {
		o.Ready(ln.Addr().String())
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serving the demo service: %w", err)
	case <-ctx.Done():
	}
	// Requests in flight get a moment to finish; a client's connection
	// that never sent a request would otherwise hold Shutdown for 5s, and
	// a local target kills a release that takes longer than its grace.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
	}
	fmt.Fprintf(s.log, "%s %s stopped\n", s.name, s.version)
	return nil
}

func (s *service) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /checkout", s.checkout)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%s %s\n", s.name, s.version)
	})
	return mux
}

// checkout places an order, or fails the way this release fails.
func (s *service) checkout(w http.ResponseWriter, r *http.Request) {
	failure, amount := s.roll()
	if failure != nil {
		hub := s.hub.Clone()
		hub.Scope().SetRequest(r)
		hub.Scope().SetTag("route", "/checkout")
		hub.CaptureException(failure)
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "%s %s\ncheckout failed: %v\n", s.name, s.version, failure)
		return
	}
	id, err := insertOrder(r.Context(), s.db, s.version, amount)
	if err != nil {
		s.hub.Clone().CaptureException(err)
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "%s %s\ncheckout failed: could not store the order\n", s.name, s.version)
		return
	}
	fmt.Fprintf(w, "%s %s\norder %d: %d.%02d\n", s.name, s.version, id, amount/100, amount%100)
}

// roll decides whether this checkout fails and what the order costs.
func (s *service) roll() (failure error, amountCents int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.rand.Float64()
	amountCents = 500 + s.rand.IntN(20000)
	switch {
	case s.version == DefectiveVersion && p < defectRate:
		return TypeError{Msg: "cart is undefined"}, amountCents
	case s.version != DefectiveVersion && p < baselineRate:
		return TimeoutError{Msg: "payment gateway slow"}, amountCents
	}
	return nil, amountCents
}
