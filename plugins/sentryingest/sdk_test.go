package sentryingest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/ripcordhq/ripcord/core"
)

type dbTimeout struct{}

func (dbTimeout) Error() string { return "db timeout" }

type cartEmpty struct{}

func (cartEmpty) Error() string { return "cart is empty" }

// A real sentry-go v0.50.0 client, with its default transport, sends a
// known mix over HTTP; after Flush the ingest's counts match exactly.
func TestRealSDKMixIsCountedExactly(t *testing.T) {
	store := newMemStore()
	ing := newIngest(t, Config{Store: store})
	stats := newWireStats()
	addr := strings.TrimPrefix(serve(t, stats.wrap(ing)), "http://")
	ref := core.Ref{Service: "shop", Env: "canary"}

	v1 := sdkClient(t, addr, "publickey", "1", "canary", "shop@1.0.0")
	v2 := sdkClient(t, addr, "publickey", "1", "canary", "shop@2.0.0")
	scope := sentry.NewScope()

	for range 34 { // v1: 34 errors of one kind
		v1.CaptureException(&dbTimeout{}, nil, scope)
	}
	custom := sentry.NewScope()
	custom.SetFingerprint([]string{"payment-provider-timeout"})
	for range 3 { // v1: 3 errors with a custom fingerprint
		v1.CaptureException(&dbTimeout{}, nil, custom)
	}
	for range 5 { // v1: 5 info messages, not errors
		v1.CaptureMessage("cache warmed", nil, infoScope())
	}
	hub := sentry.NewHub(v1, sentry.NewScope())
	ctx := sentry.SetHubOnContext(context.Background(), hub)
	for range 2 { // 2 transactions, skipped
		tx := sentry.StartTransaction(ctx, "GET /cart")
		tx.Finish()
	}
	flush(t, v1)

	for range 4 { // v2: 4 of the old kind
		v2.CaptureException(&dbTimeout{}, nil, scope)
	}
	for range 8 { // v2: 8 of a kind first seen in v2
		v2.CaptureException(&cartEmpty{}, nil, scope)
	}
	flush(t, v2)

	stats.mu.Lock()
	if got := stats.itemTypes["transaction"]; got != 2 {
		t.Errorf("transactions on the wire = %d, want 2 (the mix must include them)", got)
	}
	if got := stats.itemTypes["event"]; got != 34+3+5+12 {
		t.Errorf("event items on the wire = %d, want %d", got, 34+3+5+12)
	}
	stats.mu.Unlock()

	issues, err := ing.Issues(context.Background(), ref, "")
	if err != nil {
		t.Fatal(err)
	}
	byFP := map[string]core.ErrorIssue{}
	for _, is := range issues {
		byFP[is.Fingerprint] = is
	}
	dbFP := "exception *sentryingest.dbTimeout at github.com/ripcordhq/ripcord/plugins/sentryingest.TestRealSDKMixIsCountedExactly"
	cartFP := "exception *sentryingest.cartEmpty at github.com/ripcordhq/ripcord/plugins/sentryingest.TestRealSDKMixIsCountedExactly"
	want := map[string]struct {
		count        int64
		firstRelease string
		title        string
	}{
		dbFP:                              {38, "shop@1.0.0", "*sentryingest.dbTimeout: db timeout"},
		"custom payment-provider-timeout": {3, "shop@1.0.0", "*sentryingest.dbTimeout: db timeout"},
		cartFP:                            {8, "shop@2.0.0", "*sentryingest.cartEmpty: cart is empty"},
	}
	if len(byFP) != len(want) {
		t.Errorf("issues = %+v, want %d issues", issues, len(want))
	}
	for fp, w := range want {
		is, ok := byFP[fp]
		if !ok {
			t.Errorf("no issue %q in %+v", fp, issues)
			continue
		}
		if is.Count != w.count || is.FirstRelease != w.firstRelease || is.Title != w.title {
			t.Errorf("issue %q = %d %q %q, want %d %q %q", fp, is.Count, is.FirstRelease, is.Title, w.count, w.firstRelease, w.title)
		}
	}

	v1Issues, _ := ing.Issues(context.Background(), ref, "shop@1.0.0")
	var v1Total int64
	for _, is := range v1Issues {
		v1Total += is.Count
	}
	if v1Total != 37 {
		t.Errorf("v1 errors = %d, want 37", v1Total)
	}
	windows := ing.counts.windows(ref, time.Now(), 30*time.Minute, 5)
	if total(windows, "shop@1.0.0") != 37 || total(windows, "shop@2.0.0") != 12 {
		t.Errorf("windows: v1=%d v2=%d, want 37 and 12", total(windows, "shop@1.0.0"), total(windows, "shop@2.0.0"))
	}
	if err := ing.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := store.total(ref, "shop@1.0.0"); got != 37 {
		t.Errorf("persisted v1 = %d, want 37", got)
	}
	if got := store.total(ref, "shop@2.0.0"); got != 12 {
		t.Errorf("persisted v2 = %d, want 12", got)
	}
}

func infoScope() *sentry.Scope {
	s := sentry.NewScope()
	s.SetLevel(sentry.LevelInfo)
	return s
}

// Over budget the ingest answers 429 with X-Sentry-Rate-Limits, and
// sentry-go then drops error events itself: its transport checks the
// category's deadline before every send (internal/http/transport.go
// sendEnvelopeHTTP, and the telemetry scheduler before that), so after
// the 429 no error request reaches the server until Retry-After passes.
func TestRealSDKBacksOffAfter429(t *testing.T) {
	// 5 events of burst; refilling one token takes 100 s, so the whole
	// test runs inside the Retry-After.
	ing := newIngest(t, Config{Rate: 0.01, Burst: 5})
	stats := newWireStats()
	addr := strings.TrimPrefix(serve(t, stats.wrap(ing)), "http://")
	c := sdkClient(t, addr, "publickey", "1", "production", "shop@1.0.0")

	for range 40 {
		c.CaptureException(&dbTimeout{}, nil, sentry.NewScope())
	}
	flush(t, c)
	for range 10 { // later captures are dropped by the SDK too
		c.CaptureException(&dbTimeout{}, nil, sentry.NewScope())
		flush(t, c)
	}

	stats.mu.Lock()
	defer stats.mu.Unlock()
	if stats.statuses[429] != 1 {
		t.Errorf("429 answers = %d, want exactly 1 (statuses %v)", stats.statuses[429], stats.statuses)
	}
	if stats.statuses[200] != 5 {
		t.Errorf("200 answers = %d, want 5 (the burst)", stats.statuses[200])
	}
	if stats.after429 != 0 {
		t.Errorf("%d error requests reached the server after the 429; sentry-go should have stopped", stats.after429)
	}
	if stats.eventRequests != 6 {
		t.Errorf("event requests = %d, want 6 (5 accepted + 1 refused)", stats.eventRequests)
	}
	issues, _ := ing.Issues(context.Background(), core.Ref{Service: "shop", Env: "production"}, "")
	if len(issues) != 1 || issues[0].Count != 5 {
		t.Errorf("counted %+v, want one issue with 5 events (the 429 counts nothing)", issues)
	}
}

// Counts flushed by one ingest are the baseline of the next.
func TestRestartKeepsBaseline(t *testing.T) {
	store := newMemStore()
	ref := core.Ref{Service: "shop", Env: "production"}
	ctx := context.Background()

	run := func(n int, release string) *Ingest {
		ing, err := New(ctx, Config{Service: "shop", Keys: map[string]string{"7": "k7"}, Store: store,
			Listen: "127.0.0.1:0", Environments: []string{"production"}})
		if err != nil {
			t.Fatal(err)
		}
		a, err := ing.Listen()
		if err != nil {
			t.Fatal(err)
		}
		c := sdkClient(t, a.String(), "k7", "7", "production", release)
		for range n {
			c.CaptureException(&dbTimeout{}, nil, sentry.NewScope())
		}
		flush(t, c)
		return ing
	}

	first := run(10, "shop@1.0.0")
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := store.total(ref, ""); got != 10 {
		t.Fatalf("after first Close the store has %d, want 10", got)
	}

	second := run(5, "shop@1.0.0")
	issues, err := second.Issues(ctx, ref, "shop@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if len(issues) != 1 || issues[0].Count != 15 {
		t.Fatalf("after restart issues = %+v, want one issue with 10+5", issues)
	}
	if err := second.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := store.total(ref, ""); got != 15 {
		t.Errorf("store after second Close = %d, want 15 (each event written once)", got)
	}

	third, err := New(ctx, Config{Service: "shop", Keys: map[string]string{"7": "k7"}, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close(ctx)
	got := make(chan core.ErrorWindow, 4)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = third.WatchCounts(wctx, ref, func(w core.ErrorWindow) { got <- w }) }()
	select {
	case w := <-got:
		if w.Release != "shop@1.0.0" || w.Total() != 15 {
			t.Errorf("first push after restart = %s %d, want shop@1.0.0 15", w.Release, w.Total())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no window pushed after restart")
	}
}
