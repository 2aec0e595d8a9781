package sentryingest

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/ripcordhq/ripcord/core"
)

// realEnvelope is the body captured from sentry-go 0.50.0. The capture in
// sentry-go-0.50.0-envelope-error.txt had its abs_path redacted from /tmp
// to $TMPDIR after it was taken, which left its item length 3 bytes short;
// the .envelope file restores /tmp, so its length (892) is right again.
func realEnvelope(t testing.TB) []byte {
	b, err := os.ReadFile("testdata/sentry-go-0.50.0-error.envelope")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRealSentryGoEnvelope(t *testing.T) {
	env, err := ParseEnvelope(realEnvelope(t), ParseLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if env.EventID != "0737c393369044fa888d6ddbe7887798" || len(env.Items) != 1 || env.Items[0].Type != "event" {
		t.Fatalf("envelope = %q %d items", env.EventID, len(env.Items))
	}
	ev, _, err := ParseEvent(env.Items[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	want := Event{
		EventID: "0737c393369044fa888d6ddbe7887798", Level: "error", Environment: "canary", Release: "myapp@1.2.3",
		Fingerprint: "exception *errors.errorString at sentryprobe.TestDump",
		Title:       "*errors.errorString: boom after rollout",
	}
	if ev != want {
		t.Errorf("event = %+v\nwant    %+v", ev, want)
	}
}

func TestParseSpecExamples(t *testing.T) {
	// The envelope spec's example: a binary attachment with a length, an
	// event with a length, trailing newline.
	spec := "{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\",\"dsn\":\"https://e12d836b15bb49d7bbf99e64295d995b:@sentry.io/42\"}\n" +
		"{\"type\":\"attachment\",\"length\":10,\"content_type\":\"text/plain\",\"filename\":\"hello.txt\"}\n" +
		"\xef\xbb\xbfHello\r\n\n" +
		"{\"type\":\"event\",\"length\":41,\"content_type\":\"application/json\",\"filename\":\"application.log\"}\n" +
		"{\"message\":\"hello world\",\"level\":\"error\"}\n"
	env, err := ParseEnvelope([]byte(spec), ParseLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(env.Items) != 2 || string(env.Items[0].Payload) != "\xef\xbb\xbfHello\r\n" || env.Items[1].Type != "event" {
		t.Fatalf("items = %+v", env.Items)
	}
	ev, _, err := ParseEvent(env.Items[1].Payload)
	if err != nil || ev.Fingerprint != "message hello world" || ev.Title != "hello world" || !ev.Counted() {
		t.Errorf("event = %+v, %v", ev, err)
	}

	// Implicit lengths, an empty attachment and EOF without a newline.
	implicit := "{}\n{\"type\":\"attachment\"}\n\n{\"type\":\"session\"}\n{\"sid\":\"x\"}"
	env, err = ParseEnvelope([]byte(implicit), ParseLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(env.Items) != 2 || len(env.Items[0].Payload) != 0 || string(env.Items[1].Payload) != `{"sid":"x"}` {
		t.Errorf("items = %+v", env.Items)
	}
}

func TestFingerprintAndTitle(t *testing.T) {
	exc := `"exception":{"values":[{"type":"Inner","value":"first"},{"type":"KeyError","value":"'x'","stacktrace":{"frames":[{"module":"app.old","function":"outer"},{"filename":"app/views.py","function":"checkout","lineno":12}]}}]}`
	cases := []struct {
		name, body, fp, title, level string
	}{
		{"values form, last exception, top frame", `{` + exc + `}`, "exception KeyError at app/views.py.checkout", "KeyError: 'x'", "error"},
		{"only default", `{"fingerprint":["{{ default }}"],` + exc + `}`, "exception KeyError at app/views.py.checkout", "KeyError: 'x'", "error"},
		{"default plus extra", `{"fingerprint":["{{ default }}","tenant-7"],` + exc + `}`, "custom exception KeyError at app/views.py.checkout | tenant-7", "KeyError: 'x'", "error"},
		{"custom", `{"fingerprint":["payments",3],"level":"fatal",` + exc + `}`, "custom payments | 3", "KeyError: 'x'", "fatal"},
		{"message object", `{"message":{"message":"user %s failed","formatted":"user 7 failed"},"level":"warning"}`, "message user %s failed", "user 7 failed", "warning"},
		{"logentry", `{"logentry":{"message":"disk %d%% full","formatted":"disk 91% full"},"level":"critical"}`, "message disk %d%% full", "disk 91% full", "fatal"},
		{"no stack uses value", `{"exception":[{"type":"E","value":"v"}]}`, "exception E: v", "E: v", "error"},
		{"nothing", `{}`, "event without exception or message", "<unlabeled event>", "error"},
		{"long title truncated", `{"message":"` + strings.Repeat("é", 300) + `"}`, "sha256 ", strings.Repeat("é", 199) + "…", "error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, _, err := ParseEvent([]byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(ev.Fingerprint, c.fp) || (c.fp != "sha256 " && ev.Fingerprint != c.fp) {
				t.Errorf("fingerprint = %q, want %q", ev.Fingerprint, c.fp)
			}
			if ev.Title != c.title || ev.Level != c.level {
				t.Errorf("title, level = %q %q, want %q %q", ev.Title, ev.Level, c.title, c.level)
			}
		})
	}
}

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zl(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	_, _ = w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestHandlerAnswers(t *testing.T) {
	real := realEnvelope(t)
	capturedRaw, err := os.ReadFile("testdata/sentry-go-0.50.0-envelope-error.txt")
	if err != nil {
		t.Fatal(err)
	}
	_, capturedBody, _ := bytes.Cut(capturedRaw, []byte("\n\n"))
	event := func(s string) []byte {
		return []byte("{\"event_id\":\"0123456789abcdef0123456789abcdef\"}\n{\"type\":\"event\"}\n" + s + "\n")
	}
	var many bytes.Buffer
	many.WriteString("{}\n")
	for range 10_000 {
		many.WriteString("{\"type\":\"event\",\"length\":2}\n{}\n")
	}
	bomb := gz(t, make([]byte, 64<<20)) // 64 MiB of zeros in ~64 KiB
	const auth = "Sentry sentry_version=7, sentry_client=sentry.go/0.50.0, sentry_key=publickey"

	cases := []struct {
		name     string
		method   string
		path     string
		auth     string
		encoding string
		body     []byte
		status   int
		counted  int64
		detail   string
	}{
		{"real envelope", "POST", "/api/1/envelope/", auth, "", real, 200, 1, `"id":"0737c393369044fa888d6ddbe7887798"`},
		{"no trailing slash, key in query", "POST", "/api/1/envelope?sentry_key=publickey", "", "", real, 200, 1, ""},
		{"gzip", "POST", "/api/1/envelope/", auth, "gzip", gz(t, real), 200, 1, ""},
		{"deflate", "POST", "/api/1/envelope/", auth, "deflate", zl(t, real), 200, 1, ""},
		{"store endpoint", "POST", "/api/1/store/", auth, "", []byte(`{"event_id":"ab","exception":{"values":[{"type":"E"}]}}`), 200, 1, `"id":"ab"`},
		{"store transaction skipped", "POST", "/api/1/store/", auth, "", []byte(`{"type":"transaction","event_id":"ab"}`), 200, 0, ""},
		{"info not counted", "POST", "/api/1/envelope/", auth, "", event(`{"level":"info","message":"m"}`), 200, 0, ""},
		{"only unknown items", "POST", "/api/1/envelope/", auth, "", []byte("{}\n{\"type\":\"client_report\"}\n{}\n{\"type\":\"check_in\",\"length\":2}\n{}\n"), 200, 0, "{}"},
		{"missing key", "POST", "/api/1/envelope/", "", "", real, 401, 0, ""},
		{"wrong key", "POST", "/api/1/envelope/", strings.Replace(auth, "publickey", "other", 1), "", real, 401, 0, ""},
		{"header and query disagree", "POST", "/api/1/envelope/?sentry_key=other", auth, "", real, 401, 0, ""},
		{"unknown project", "POST", "/api/2/envelope/", auth, "", real, 401, 0, ""},
		{"GET", "GET", "/api/1/envelope/", auth, "", nil, 405, 0, ""},
		{"non-numeric project", "POST", "/api/x/envelope/", auth, "", real, 404, 0, ""},
		{"truncated envelope", "POST", "/api/1/envelope/", auth, "", real[:len(real)/2], 400, 0, "length 892"},
		{"item length too short", "POST", "/api/1/envelope/", auth, "", capturedBody, 400, 0, "longer than its length"},
		{"empty body", "POST", "/api/1/envelope/", auth, "", nil, 400, 0, "empty envelope header"},
		{"bad header JSON", "POST", "/api/1/envelope/", auth, "", []byte("{\"event_id\":\n{\"type\":\"event\"}\n{}\n"), 400, 0, "envelope header"},
		{"bad item header", "POST", "/api/1/envelope/", auth, "", []byte("{}\n[1]\n{}\n"), 400, 0, "not a JSON object"},
		{"negative length", "POST", "/api/1/envelope/", auth, "", []byte("{}\n{\"type\":\"event\",\"length\":-1}\n{}\n"), 400, 0, "bad length"},
		{"bad event JSON", "POST", "/api/1/envelope/", auth, "", event(`{"level":"error",`), 400, 0, "event JSON"},
		{"wrong field type", "POST", "/api/1/envelope/", auth, "", event(`{"release":7}`), 400, 0, "wrong type"},
		{"invalid UTF-8 event", "POST", "/api/1/envelope/", auth, "", event("{\"message\":\"\xff\xfe\"}"), 400, 0, "UTF-8"},
		{"invalid UTF-8 header", "POST", "/api/1/envelope/", auth, "", []byte("{\"event_id\":\"\xff\"}\n"), 400, 0, "UTF-8"},
		{"corrupt gzip", "POST", "/api/1/envelope/", auth, "gzip", []byte("not gzip at all"), 400, 0, "gzip"},
		{"truncated gzip", "POST", "/api/1/envelope/", auth, "gzip", gz(t, real)[:100], 400, 0, "gzip"},
		{"unknown encoding", "POST", "/api/1/envelope/", auth, "br", real, 415, 0, ""},
		{"10k items", "POST", "/api/1/envelope/", auth, "", many.Bytes(), 413, 0, "more than 1000 items"},
		{"gzip bomb", "POST", "/api/1/envelope/", auth, "gzip", bomb, 413, 0, "over 1048576 bytes"},
		{"compressed body over the cap", "POST", "/api/1/envelope/", auth, "", append(real, bytes.Repeat([]byte("\n"), 2<<20)...), 413, 0, ""},
		{"event over its own limit", "POST", "/api/1/envelope/", auth, "", event(`{"message":"` + strings.Repeat("a", 300<<10) + `"}`), 413, 0, "event item"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ing := newIngest(t, Config{MaxEventSize: 256 << 10})
			req := httptest.NewRequest(c.method, c.path, bytes.NewReader(c.body))
			if c.auth != "" {
				req.Header.Set("X-Sentry-Auth", c.auth)
			}
			if c.encoding != "" {
				req.Header.Set("Content-Encoding", c.encoding)
			}
			rec := httptest.NewRecorder()
			ing.ServeHTTP(rec, req)
			if rec.Code != c.status {
				t.Fatalf("status = %d (%s), want %d", rec.Code, rec.Body.String(), c.status)
			}
			if c.detail != "" && !strings.Contains(rec.Body.String(), c.detail) {
				t.Errorf("body = %s, want it to mention %q", rec.Body.String(), c.detail)
			}
			var n int64
			for _, env := range []string{"canary", "production", NoEnvironment} {
				is, _ := ing.Issues(context.Background(), core.Ref{Service: "shop", Env: env}, "")
				for _, i := range is {
					n += i.Count
				}
			}
			if n != c.counted {
				t.Errorf("counted %d, want %d", n, c.counted)
			}
		})
	}
}

// The budget refuses the request that would overspend and counts none of
// it; Retry-After says when a token is back.
func TestBudgetAnswer(t *testing.T) {
	ing := newIngest(t, Config{Rate: 0.5, Burst: 2})
	send := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/api/1/envelope/?sentry_key=publickey", bytes.NewReader(realEnvelope(t)))
		rec := httptest.NewRecorder()
		ing.ServeHTTP(rec, req)
		return rec
	}
	for i := range 2 {
		if rec := send(); rec.Code != 200 {
			t.Fatalf("request %d: %d", i, rec.Code)
		}
	}
	rec := send()
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("third request: %d, want 429", rec.Code)
	}
	if ra := rec.Header().Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After = %q, want 2 (one token at 0.5/s)", ra)
	}
	if rl := rec.Header().Get("X-Sentry-Rate-Limits"); rl != "2:error:key" {
		t.Errorf("X-Sentry-Rate-Limits = %q", rl)
	}
	is, _ := ing.Issues(context.Background(), core.Ref{Service: "shop", Env: "canary"}, "")
	if len(is) != 1 || is[0].Count != 2 {
		t.Errorf("counted %+v, want 2", is)
	}
}
