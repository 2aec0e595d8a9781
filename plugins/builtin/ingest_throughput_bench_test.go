package builtin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

// BenchmarkSentryIngestProcessThroughput measures what the ingest itself
// sustains: the sentry-ingest built-in in its own process, started by the
// plugin host as `ripcord serve` starts it (with a state file, and a
// counts watch open as the observer keeps one), fed one event per
// envelope over keep-alive HTTP connections.
//
//	go test -run XXX -bench SentryIngestProcessThroughput -benchtime 200000x ./plugins/builtin/
//
// The envelopes are what real sentry-go clients send: before the timer,
// clients of three releases capture errors of several kinds (default
// grouping of three error types, 60 custom fingerprints, error-level
// messages, users and tags) through the SDK's own transport, whose HTTP
// round-tripper records each request instead of sending it. The load
// then replays those exact requests — headers and body — with a fresh
// event ID written into each (header and payload alike, so every event
// is new), one request in flight per connection as an SDK's worker does.
// The load does no JSON and no SDK work and reuses its buffers; what
// it costs (load-cpu-us/event, mostly loopback TCP system calls) is
// reported beside the ingest's own, since both share the machine's cores.
//
// Reported: events/s accepted (HTTP 200 with the event's ID) over the
// timed part; the ingest process's CPU per event (user+system from
// /proc) and the cores it used; the load's CPU per event; the ingest's
// peak RSS. Every accepted event must be counted — per release, in what
// the process reports (Issues over the plugin protocol) and in what it
// stored in the state file once stopped; "lost" is accepted minus
// counted, and anything but 0 (or any answer but 200) fails the run.
// The per-key rate limit is raised out of the way (rate 1e7): this
// measures capacity, not the 1000/s default budget.
func BenchmarkSentryIngestProcessThroughput(b *testing.B) {
	const (
		conns    = 16
		project  = "42"
		key      = "publickey"
		poolSize = 6_000 // distinct recorded envelopes, replayed round robin
		warmUp   = 2_000 // events sent before the timer
	)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	releases := []string{"shop@1.4.1", "shop@1.4.2", "shop@1.5.0-rc.1"}
	ref := core.Ref{Service: "shop", Env: "production"}

	addr := "127.0.0.1:" + strconv.Itoa(freePort(b))
	pool := recordSDKEnvelopes(b, addr, project, key, ref.Env, releases, poolSize)

	statePath := filepath.Join(b.TempDir(), "state.db")
	h := startBuiltin(b, "sentry-ingest")
	settings := map[string]any{"service": ref.Service, "env": ref.Env, "listen": addr,
		"keys": map[string]string{project: key}, "store": statePath, "rate": 1e7}
	if err := h.Configure(ctx, "sentry-ingest", settings, nil); err != nil {
		b.Fatal(err)
	}
	infos, err := h.List(ctx)
	if err != nil || len(infos) != 1 || infos[0].PID == 0 {
		b.Fatalf("plugin list %+v: %v", infos, err)
	}
	pid := infos[0].PID
	src, err := h.Errors("sentry-ingest")
	if err != nil {
		b.Fatal(err)
	}
	// The observer of a running console watches the counts the whole
	// time; the ingest pays for the pushes.
	wctx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan error, 1)
	var windows atomic.Int64
	go func() {
		watchDone <- src.WatchCounts(wctx, ref, func(core.ErrorWindow) { windows.Add(1) })
	}()

	load := newEnvelopeLoad(b, addr, pool, len(releases), conns)
	defer load.close()
	if err := load.send(warmUp); err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	ingestCPU0, loadCPU0 := cpuTime(b, pid), selfCPU(b)
	start := time.Now()
	err = load.send(b.N)
	elapsed := time.Since(start)
	ingestCPU, loadCPU := cpuTime(b, pid)-ingestCPU0, selfCPU(b)-loadCPU0
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	peak := vmKiB(b, pid, "VmHWM")

	// What the process reports, per release, over the plugin protocol.
	accepted := load.accepted()
	var sent, reported, lost int64
	fingerprints := map[string]bool{}
	for i, rel := range releases {
		issues, err := src.Issues(ctx, ref, rel)
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		for _, is := range issues {
			n += is.Count
			fingerprints[is.Fingerprint] = true
		}
		sent += accepted[i]
		reported += n
		if n != accepted[i] {
			b.Errorf("release %s: %d events accepted, the ingest reports %d", rel, accepted[i], n)
			lost += max(accepted[i]-n, 0)
		}
	}
	if want := int64(warmUp + b.N); sent != want {
		b.Fatalf("%d events answered 200, %d sent", sent, want)
	}
	stopWatch()
	if err := <-watchDone; err != nil && !errors.Is(err, context.Canceled) {
		b.Errorf("counts watch: %v", err)
	}
	if windows.Load() == 0 {
		b.Error("the counts watch saw no window during the run")
	}

	// What it stored: stopping the plugin flushes the last counts.
	if err := h.Close(); err != nil {
		b.Fatal(err)
	}
	st, err := sqlitestore.Open(ctx, statePath)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	rows, err := st.ErrorCounts(ctx, ref, time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	stored := map[string]int64{}
	for _, r := range rows {
		stored[r.Release] += r.Count
	}
	for i, rel := range releases {
		if stored[rel] != accepted[i] {
			b.Errorf("release %s: %d events accepted, the state file has %d", rel, accepted[i], stored[rel])
			lost = max(lost, accepted[i]-stored[rel])
		}
	}
	if len(stored) != len(releases) {
		b.Errorf("the state file counts releases %v, want exactly %v", slices.Sorted(maps.Keys(stored)), releases)
	}

	var bodyBytes int
	for _, env := range pool {
		bodyBytes += len(env.request)
	}
	b.Logf("%d events over %d connections in %s (after %d to warm up); %d recorded sentry-go requests of %d bytes on average; %d releases, %d fingerprints counted; %d windows pushed to the watch",
		b.N, conns, elapsed.Round(time.Millisecond), warmUp, len(pool), bodyBytes/len(pool), len(releases), len(fingerprints), windows.Load())
	n := float64(b.N)
	b.ReportMetric(n/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(ingestCPU.Microseconds())/n, "ingest-cpu-us/event")
	b.ReportMetric(ingestCPU.Seconds()/elapsed.Seconds(), "ingest-cores")
	b.ReportMetric(float64(loadCPU.Microseconds())/n, "load-cpu-us/event")
	b.ReportMetric(float64(peak)/1024, "ingest-peak-MiB")
	b.ReportMetric(float64(lost), "lost")
	if lost != 0 || reported != sent {
		b.Fatalf("%d events accepted, %d reported: every accepted event must be counted", sent, reported)
	}
}

// recordedEnvelope is one request a real sentry-go client made, ready to
// replay: the whole HTTP/1.1 request, where its event ID sits in it (the
// envelope header and the event payload), and the release it reports.
type recordedEnvelope struct {
	request []byte
	idAt    []int
	release int
}

// recordingRoundTripper stands in for the network under the SDK's own
// transport: it keeps every request and answers 200 as the ingest would.
type recordingRoundTripper struct {
	mu   sync.Mutex
	reqs []*recordedRequest
}

type recordedRequest struct {
	uri    string
	header http.Header
	body   []byte
}

func (rt *recordingRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		return nil, err
	}
	rt.mu.Lock()
	rt.reqs = append(rt.reqs, &recordedRequest{uri: r.URL.RequestURI(), header: r.Header.Clone(), body: body})
	rt.mu.Unlock()
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Content-Type": {"application/json"}},
		Body:    io.NopCloser(strings.NewReader("{}")),
		Request: r,
	}, nil
}

func (rt *recordingRoundTripper) take() []*recordedRequest {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	reqs := rt.reqs
	rt.reqs = nil
	return reqs
}

// The error types a shop's checkout reports; each groups on its own by
// default (type and top frame).
type (
	paymentDeclined struct{ code int }
	stockMissing    struct{ sku string }
	cartExpired     struct{}
)

func (e *paymentDeclined) Error() string { return fmt.Sprintf("payment declined: code %d", e.code) }
func (e *stockMissing) Error() string    { return "no stock for " + e.sku }
func (*cartExpired) Error() string       { return "cart expired" }

// recordSDKEnvelopes has real sentry-go clients (default options, one per
// release) capture n errors and returns the requests they made, one event
// per envelope.
func recordSDKEnvelopes(b *testing.B, addr, project, key, env string, releases []string, n int) []recordedEnvelope {
	b.Helper()
	rt := &recordingRoundTripper{}
	clients := make([]*sentry.Client, len(releases))
	for i, rel := range releases {
		c, err := sentry.NewClient(sentry.ClientOptions{
			Dsn: "http://" + key + "@" + addr + "/" + project, Environment: env, Release: rel,
			ServerName: "web-" + strconv.Itoa(i), HTTPTransport: rt,
		})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	var pool []recordedEnvelope
	const batch = 50 // well inside the SDK's 100-error queue between flushes
	for done := 0; done < n; {
		var sentBy []int
		for ; len(sentBy) < batch && done < n; done++ {
			r := done % len(releases)
			captureCheckoutError(clients[r], done)
			sentBy = append(sentBy, r)
		}
		for _, c := range clients {
			if !c.Flush(30 * time.Second) {
				b.Fatal("sentry-go Flush timed out while recording envelopes")
			}
		}
		reqs := rt.take()
		if len(reqs) != len(sentBy) {
			b.Fatalf("the SDK made %d requests for %d events", len(reqs), len(sentBy))
		}
		for _, req := range reqs {
			pool = append(pool, replayable(b, addr, releases, req))
		}
	}
	return pool
}

// captureCheckoutError sends event i: a mix of the default grouping,
// custom fingerprints and messages, with users and tags as a web shop's
// handlers set them.
func captureCheckoutError(c *sentry.Client, i int) {
	scope := sentry.NewScope()
	scope.SetUser(sentry.User{ID: "user-" + strconv.Itoa(i%997)})
	scope.SetTag("route", []string{"/cart", "/checkout", "/pay", "/orders"}[i%4])
	scope.SetTag("region", []string{"eu-west-1", "us-east-1"}[i%2])
	switch i % 6 {
	case 0:
		c.CaptureException(&paymentDeclined{code: 51 + i%5}, nil, scope)
	case 1:
		c.CaptureException(&stockMissing{sku: "sku-" + strconv.Itoa(i%300)}, nil, scope)
	case 2:
		c.CaptureException(&cartExpired{}, nil, scope)
	case 3:
		scope.SetLevel(sentry.LevelError)
		c.CaptureMessage("inventory sync lagging by "+strconv.Itoa(i/6%60)+"s", nil, scope)
	default:
		scope.SetFingerprint([]string{"payment-provider", strconv.Itoa(i / 6 % 60)})
		c.CaptureException(fmt.Errorf("payment provider %d timed out after %dms", i%60, 3000+i%500), nil, scope)
	}
}

// replayable turns a recorded request into the bytes to send: its own
// headers and body, the Host and Content-Length net/http would add, and
// where the event ID is.
func replayable(b *testing.B, addr string, releases []string, req *recordedRequest) recordedEnvelope {
	b.Helper()
	line, rest, ok := bytes.Cut(req.body, []byte("\n"))
	if !ok {
		b.Fatalf("recorded envelope has no header line: %q", req.body)
	}
	var head struct {
		EventID string `json:"event_id"`
	}
	if err := json.Unmarshal(line, &head); err != nil || len(head.EventID) != 32 {
		b.Fatalf("recorded envelope header %q: event_id %q: %v", line, head.EventID, err)
	}
	if n := bytes.Count(rest, []byte(`"type":"event"`)); n != 1 {
		b.Fatalf("recorded envelope has %d event items, want 1", n)
	}
	release := -1
	for i, rel := range releases {
		if bytes.Contains(rest, []byte(`"release":"`+rel+`"`)) {
			release = i
		}
	}
	if release < 0 {
		b.Fatalf("recorded envelope names none of the releases %v", releases)
	}
	var msg bytes.Buffer
	fmt.Fprintf(&msg, "POST %s HTTP/1.1\r\nHost: %s\r\n", req.uri, addr)
	req.header.Del("Content-Length")
	req.header.Set("Accept-Encoding", "gzip") // what net/http's transport adds
	if err := req.header.Write(&msg); err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(&msg, "Content-Length: %d\r\n\r\n", len(req.body))
	bodyAt := msg.Len()
	msg.Write(req.body)
	env := recordedEnvelope{request: msg.Bytes(), release: release}
	for off := 0; ; {
		i := bytes.Index(req.body[off:], []byte(head.EventID))
		if i < 0 {
			break
		}
		env.idAt = append(env.idAt, bodyAt+off+i)
		off += i + len(head.EventID)
	}
	if len(env.idAt) < 2 {
		b.Fatalf("the event ID is in the envelope %d times, want the header and the event", len(env.idAt))
	}
	return env
}

// envelopeLoad replays recorded envelopes over keep-alive connections,
// one request in flight on each, with as little work per request as it
// can: copy the request, write a new event ID, read the answer.
type envelopeLoad struct {
	pool    []recordedEnvelope
	conns   []*loadConn
	idStart [8]byte // random per run; the low 8 bytes count
	next    atomic.Uint64
}

type loadConn struct {
	c        net.Conn
	r        *bufio.Reader
	buf      []byte  // the request being sent
	resp     []byte  // the answer's body
	accepted []int64 // by release
}

func newEnvelopeLoad(b *testing.B, addr string, pool []recordedEnvelope, releases, conns int) *envelopeLoad {
	b.Helper()
	l := &envelopeLoad{pool: pool}
	if _, err := rand.Read(l.idStart[:]); err != nil {
		b.Fatal(err)
	}
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		l.conns = append(l.conns, &loadConn{c: c, r: bufio.NewReaderSize(c, 4<<10), accepted: make([]int64, releases)})
	}
	return l
}

func (l *envelopeLoad) close() {
	for _, c := range l.conns {
		_ = c.c.Close()
	}
}

// send sends n more events and returns the first failure: a connection
// error or any answer but 200 with the event's ID.
func (l *envelopeLoad) send(n int) error {
	last := l.next.Load() + uint64(n)
	var wg sync.WaitGroup
	errs := make([]error, len(l.conns))
	for ci, lc := range l.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seq := l.next.Add(1) - 1
				if seq >= last {
					return
				}
				if err := l.sendOne(lc, seq); err != nil {
					errs[ci] = fmt.Errorf("event %d: %w", seq, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (l *envelopeLoad) sendOne(lc *loadConn, seq uint64) error {
	env := &l.pool[seq%uint64(len(l.pool))]
	var raw [16]byte
	copy(raw[:8], l.idStart[:])
	binary.BigEndian.PutUint64(raw[8:], seq)
	var id [32]byte
	hex.Encode(id[:], raw[:])
	lc.buf = append(lc.buf[:0], env.request...)
	for _, at := range env.idAt {
		copy(lc.buf[at:], id[:])
	}
	if _, err := lc.c.Write(lc.buf); err != nil {
		return err
	}
	status, body, err := lc.readResponse()
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("answered %d: %s", status, body)
	}
	if !bytes.Contains(body, id[:]) {
		return fmt.Errorf("answered 200 without the event's ID: %s", body)
	}
	lc.accepted[env.release]++
	return nil
}

// readResponse reads one HTTP/1.1 answer with a Content-Length body (what
// net/http's server writes for a small handler output) into the
// connection's buffer, without the allocations of http.ReadResponse.
func (lc *loadConn) readResponse() (status int, body []byte, err error) {
	line, err := lc.r.ReadSlice('\n')
	if err != nil {
		return 0, nil, fmt.Errorf("reading the status line: %w", err)
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, nil, fmt.Errorf("not an HTTP/1.1 status line: %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, fmt.Errorf("status line %q: %w", line, err)
	}
	length := -1
	for {
		line, err := lc.r.ReadSlice('\n')
		if err != nil {
			return 0, nil, fmt.Errorf("reading the headers: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		if bytes.EqualFold(name, []byte("Content-Length")) {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(value))); err != nil {
				return 0, nil, fmt.Errorf("Content-Length %q: %w", value, err)
			}
		}
	}
	if length < 0 || length > 64<<10 {
		return 0, nil, fmt.Errorf("answer of status %d without a usable Content-Length (%d)", status, length)
	}
	if cap(lc.resp) < length {
		lc.resp = make([]byte, length)
	}
	body = lc.resp[:length]
	if _, err := io.ReadFull(lc.r, body); err != nil {
		return 0, nil, fmt.Errorf("reading the body: %w", err)
	}
	return status, body, nil
}

// accepted is the events answered 200, by release.
func (l *envelopeLoad) accepted() []int64 {
	out := make([]int64, len(l.conns[0].accepted))
	for _, lc := range l.conns {
		for i, n := range lc.accepted {
			out[i] += n
		}
	}
	return out
}

// selfCPU is the user and system CPU time this process (the load) has
// used.
func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
