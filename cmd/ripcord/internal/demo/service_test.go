package demo

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestServiceAnswersHealthAndNamesItsVersion(t *testing.T) {
	data := t.TempDir()
	base := startService(t, ServiceOptions{Version: "v1.4.2", DataDir: data, Seed: 7})

	if code, body := getText(t, base+"/healthz"); code != 200 || body != "ok" {
		t.Fatalf("GET /healthz = %d %q, want 200 \"ok\"", code, body)
	}
	if code, body := getText(t, base+"/"); code != 200 || body != "api v1.4.2\n" {
		t.Fatalf("GET / = %d %q, want 200 \"api v1.4.2\\n\"", code, body)
	}
	if code, _ := getText(t, base+"/nope"); code != http.StatusNotFound {
		t.Fatalf("GET /nope = %d, want 404", code)
	}
}

// Every successful checkout is an order row in the shared database, and
// every answer, failed or not, names the release that gave it.
func TestCheckoutStoresOrdersInTheSharedDatabase(t *testing.T) {
	data := t.TempDir()
	stable := startService(t, ServiceOptions{Version: "v1.4.2", DataDir: data, Seed: 3})
	canary := startService(t, ServiceOptions{Version: "v1.4.3", DataDir: data, Seed: 4})

	ok := 0
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range 40 {
		base, version := stable, "v1.4.2"
		if i%2 == 1 {
			base, version = canary, "v1.4.3"
		}
		wg.Go(func() {
			code, body, err := fetch(base + "/checkout")
			if err != nil {
				t.Errorf("checkout: %v", err)
				return
			}
			if first, _, _ := strings.Cut(body, "\n"); first != "api "+version {
				t.Errorf("checkout answered first line %q, want %q", first, "api "+version)
			}
			if code == http.StatusOK {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	db, err := openOrders(context.Background(), filepath.Join(data, OrdersFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows int
	if err := db.QueryRow(`SELECT count(*) FROM orders`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != ok || ok == 0 {
		t.Fatalf("%d orders stored for %d successful checkouts", rows, ok)
	}
}

// sentryException is one exception of an event.
type sentryException struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// sentryEvent is what the test reads from a Sentry event item.
type sentryEvent struct {
	Release     string `json:"release"`
	Environment string `json:"environment"`
	Exceptions  []sentryException
}

// UnmarshalJSON reads "exception" in either form the protocol allows: a
// list, or {"values": [...]}.
func (e *sentryEvent) UnmarshalJSON(b []byte) error {
	var raw struct {
		Release     string          `json:"release"`
		Environment string          `json:"environment"`
		Exception   json.RawMessage `json:"exception"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	e.Release, e.Environment = raw.Release, raw.Environment
	if len(raw.Exception) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw.Exception, &e.Exceptions); err == nil {
		return nil
	}
	var wrapped struct {
		Values []sentryException `json:"values"`
	}
	if err := json.Unmarshal(raw.Exception, &wrapped); err != nil {
		return err
	}
	e.Exceptions = wrapped.Values
	return nil
}

// sentryServer collects the events posted to it as Sentry envelopes.
type sentryServer struct {
	mu     sync.Mutex
	events []sentryEvent
	bad    []string
}

func (s *sentryServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err == nil && !strings.HasSuffix(r.URL.Path, "/envelope/") {
		err = fmt.Errorf("posted to %s", r.URL.Path)
	}
	if err == nil && !strings.Contains(r.Header.Get("X-Sentry-Auth"), "sentry_key=testkey") {
		err = fmt.Errorf("no project key in the auth header")
	}
	var events []sentryEvent
	if err == nil {
		events, err = parseEnvelope(raw)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.bad = append(s.bad, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.events = append(s.events, events...)
	fmt.Fprint(w, `{}`)
}

// parseEnvelope reads the event items of one envelope: a header line,
// then items, each a header line and a payload of its length (or up to
// the next newline when the header gives none).
func parseEnvelope(raw []byte) ([]sentryEvent, error) {
	rd := bufio.NewReader(bytes.NewReader(raw))
	if _, err := rd.ReadBytes('\n'); err != nil {
		return nil, fmt.Errorf("envelope without a header line: %w", err)
	}
	var events []sentryEvent
	for {
		line, err := rd.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) == 0 && err != nil {
			return events, nil
		}
		var item struct {
			Type   string `json:"type"`
			Length *int   `json:"length"`
		}
		if err := json.Unmarshal(line, &item); err != nil {
			return nil, fmt.Errorf("item header %q: %w", line, err)
		}
		var payload []byte
		if item.Length != nil {
			payload = make([]byte, *item.Length)
			if _, err := io.ReadFull(rd, payload); err != nil {
				return nil, fmt.Errorf("item payload: %w", err)
			}
			_, _ = rd.ReadByte() // the newline after the payload, if any
		} else {
			payload, _ = rd.ReadBytes('\n')
		}
		if item.Type != "event" {
			continue
		}
		var ev sentryEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, fmt.Errorf("event payload: %w", err)
		}
		events = append(events, ev)
	}
}

// count is the number of events of a release with an exception of the
// given type and value.
func (s *sentryServer) count(release, typ, value string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ev := range s.events {
		vals := ev.Exceptions
		if ev.Release == release && ev.Environment == "staging" && len(vals) > 0 &&
			vals[len(vals)-1].Type == typ && vals[len(vals)-1].Value == value {
			n++
		}
	}
	return n
}

func (s *sentryServer) refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bad)
}

func (s *sentryServer) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

// checkoutFailures sends n checkouts one after the other and counts 500s.
func checkoutFailures(t *testing.T, base string, n int) int {
	t.Helper()
	failed := 0
	for range n {
		code, _ := getText(t, base+"/checkout")
		switch code {
		case http.StatusOK:
		case http.StatusInternalServerError:
			failed++
		default:
			t.Fatalf("checkout answered %d", code)
		}
	}
	return failed
}

// The defective release fails checkout far more often than the one before
// it, and each failure reaches Sentry as an exception of its release, so
// an error-spike analysis has something real to compare.
func TestDefectiveReleaseFailsCheckoutAndReportsToSentry(t *testing.T) {
	sink := &sentryServer{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	dsn := "http://testkey@" + strings.TrimPrefix(srv.URL, "http://") + "/1"
	const requests = 300

	good := startService(t, ServiceOptions{Version: "v1.4.2", DSN: dsn, Environment: "staging", DataDir: t.TempDir(), Seed: 42})
	bad := startService(t, ServiceOptions{Version: DefectiveVersion, DSN: dsn, Environment: "staging", DataDir: t.TempDir(), Seed: 42})
	goodFailed := checkoutFailures(t, good, requests)
	badFailed := checkoutFailures(t, bad, requests)

	goodShare, badShare := float64(goodFailed)/requests, float64(badFailed)/requests
	if badShare < 0.2 || goodShare > 0.08 || badShare < 4*goodShare {
		t.Fatalf("checkout failure share: %s %.3f, v1.4.2 %.3f; want the defect well above the baseline", DefectiveVersion, badShare, goodShare)
	}
	if goodFailed == 0 {
		t.Fatalf("v1.4.2 never failed in %d checkouts: the baseline has no errors to compare with", requests)
	}
	waitFor(t, 15*time.Second, "every failure to arrive at the Sentry server", func() bool {
		return sink.total() >= goodFailed+badFailed || sink.refused() > 0
	})
	if got := sink.count(DefectiveVersion, "TypeError", "cart is undefined"); got != badFailed {
		t.Errorf("%d TypeError events for %s, want one per failed checkout (%d)", got, DefectiveVersion, badFailed)
	}
	if got := sink.count("v1.4.2", "TimeoutError", "payment gateway slow"); got != goodFailed {
		t.Errorf("%d TimeoutError events for v1.4.2, want one per failed checkout (%d)", got, goodFailed)
	}
	if sink.total() != goodFailed+badFailed {
		t.Errorf("%d events arrived for %d failed checkouts", sink.total(), goodFailed+badFailed)
	}
	if sink.refused() > 0 {
		t.Errorf("the Sentry server refused requests: %v", sink.bad)
	}
}

// Events captured right before the service stops are still delivered.
func TestServiceFlushesEventsWhenStopped(t *testing.T) {
	sink := &sentryServer{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	dsn := "http://testkey@" + strings.TrimPrefix(srv.URL, "http://") + "/1"

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Service(ctx, ServiceOptions{Version: DefectiveVersion, DSN: dsn, Environment: "staging",
			DataDir: t.TempDir(), Seed: 9, Ready: func(a string) { ready <- a }})
	}()
	base := "http://" + <-ready
	failed := checkoutFailures(t, base, 30)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Service: %v", err)
	}
	// Service has returned: whatever was not flushed is lost now.
	if sink.refused() > 0 {
		t.Fatalf("the Sentry server refused requests: %v", sink.bad)
	}
	if got := sink.total(); got != failed || failed == 0 {
		t.Fatalf("%d events delivered by the time Service returned, want %d", got, failed)
	}
}
