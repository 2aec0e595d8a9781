package demo

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// recorder counts the requests a fake target receives and how many ran
// at once.
type recorder struct {
	hold time.Duration // how long each request takes

	mu             sync.Mutex
	requests       int
	inFlight, peak int
	badPaths       []string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.requests++
	rec.inFlight++
	rec.peak = max(rec.peak, rec.inFlight)
	if r.URL.Path != "/checkout" && r.URL.Path != "/" {
		rec.badPaths = append(rec.badPaths, r.URL.Path)
	}
	rec.mu.Unlock()
	select {
	case <-time.After(rec.hold):
	case <-r.Context().Done():
	}
	rec.mu.Lock()
	rec.inFlight--
	rec.mu.Unlock()
}

func (rec *recorder) snapshot() (requests, peak int, badPaths []string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.requests, rec.peak, rec.badPaths
}

// runTraffic starts Traffic and returns a stop function that cancels it
// and reports how long Traffic ran and how long it took to return.
func runTraffic(t *testing.T, urls []string, rate int) (stop func() (ran, stopping time.Duration)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- Traffic(ctx, urls, rate) }()
	return func() (time.Duration, time.Duration) {
		select {
		case err := <-done:
			t.Fatalf("Traffic returned before it was stopped: %v", err)
		default:
		}
		cancel()
		canceled := time.Now()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Traffic: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Traffic did not return within 5s of its context ending")
		}
		return canceled.Sub(start), time.Since(canceled)
	}
}

func TestTrafficKeepsItsRateOnEveryURL(t *testing.T) {
	const rate = 20
	a, b := &recorder{}, &recorder{}
	srvA, srvB := httptest.NewServer(a), httptest.NewServer(b)
	defer srvA.Close()
	defer srvB.Close()

	stop := runTraffic(t, []string{srvA.URL, srvB.URL + "/"}, rate)
	waitFor(t, 10*time.Second, "both targets to see 10 requests", func() bool {
		na, _, _ := a.snapshot()
		nb, _, _ := b.snapshot()
		return na >= 10 && nb >= 10
	})
	ran, _ := stop()

	limit := int(ran.Seconds()*rate) + 1
	for name, rec := range map[string]*recorder{"first": a, "second": b} {
		n, _, bad := rec.snapshot()
		if n > limit {
			t.Errorf("%s target got %d requests in %v, more than %d a second allows (%d)", name, n, ran, rate, limit)
		}
		if len(bad) > 0 {
			t.Errorf("%s target got requests for %v; want only / and /checkout", name, bad)
		}
	}
}

// A slow target never has more than one request of the generator at a
// time: ticks that find it busy are skipped, not queued.
func TestTrafficSkipsTicksWhileATargetIsSlow(t *testing.T) {
	const rate = 50
	slow := &recorder{hold: 200 * time.Millisecond}
	srv := httptest.NewServer(slow)
	defer srv.Close()

	stop := runTraffic(t, []string{srv.URL}, rate)
	waitFor(t, 10*time.Second, "four requests to the slow target", func() bool {
		n, _, _ := slow.snapshot()
		return n >= 4
	})
	ran, _ := stop()

	n, peak, _ := slow.snapshot()
	if peak != 1 {
		t.Errorf("%d requests ran at once at the slow target, want 1", peak)
	}
	// Each request holds the slot for 200ms; a tick every 20ms would have
	// queued ten times as many.
	if limit := int(ran/slow.hold) + 1; n > limit {
		t.Errorf("the slow target got %d requests in %v, want at most %d", n, ran, limit)
	}
}

func TestTrafficStopsPromptlyAndIgnoresDeadTargets(t *testing.T) {
	hung := &recorder{hold: time.Hour}
	srv := httptest.NewServer(hung)
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now: like a release restarting

	stop := runTraffic(t, []string{dead, srv.URL}, 20)
	waitFor(t, 10*time.Second, "a request to hang at the target", func() bool {
		n, _, _ := hung.snapshot()
		return n >= 1
	})
	if _, stopping := stop(); stopping > time.Second {
		t.Fatalf("Traffic took %v to return with a request hanging", stopping)
	}
}

func TestTrafficRefusesNonsense(t *testing.T) {
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"zero rate": func() error { return Traffic(ctx, []string{"http://127.0.0.1:1"}, 0) },
		"no URL":    func() error { return Traffic(ctx, nil, 5) },
		"not a URL": func() error { return Traffic(ctx, []string{"127.0.0.1:8080"}, 5) },
		"not http":  func() error { return Traffic(ctx, []string{"ftp://127.0.0.1"}, 5) },
	} {
		if err := call(); err == nil {
			t.Errorf("%s: Traffic returned nil, want an error", name)
		}
	}
}
