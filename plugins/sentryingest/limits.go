package sentryingest

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"
)

// Defaults of the ingest's limits.
const (
	DefaultMaxEnvelopeSize = 1 << 20 // bytes, compressed and decompressed
	DefaultMaxEventSize    = 1 << 20 // bytes of one event
	DefaultMaxItems        = 1000    // items per envelope
	DefaultRate            = 1000    // events per second per key
	DefaultBurst           = 2000    // events
)

// maxPresize bounds the buffer readCapped allocates ahead of the body.
const maxPresize = 64 << 10

// errUnsupportedEncoding is answered with 415.
var errUnsupportedEncoding = errors.New("unsupported Content-Encoding")

// readBody reads a request body, decompressing gzip or deflate, and never
// holds more than max bytes of either the compressed or the decompressed
// form: a small gzip bomb stops at max+1 inflated bytes with ErrTooLarge.
func readBody(r *http.Request, max int64) ([]byte, error) {
	raw, err := readCapped(r.Body, max, r.ContentLength)
	if err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	var zr io.ReadCloser
	switch enc {
	case "", "identity":
		return raw, nil
	case "gzip", "x-gzip":
		g, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, malformed("gzip: %v", err)
		}
		zr = g
	case "deflate":
		// HTTP's deflate is zlib-wrapped, but some clients send raw deflate.
		if z, err := zlib.NewReader(bytes.NewReader(raw)); err == nil {
			zr = z
		} else {
			zr = flate.NewReader(bytes.NewReader(raw))
		}
	default:
		return nil, fmt.Errorf("%w %q", errUnsupportedEncoding, enc)
	}
	defer zr.Close()
	out, err := readCapped(zr, max, -1)
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, fmt.Errorf("decompressing %s body: %w", enc, err)
		}
		return nil, malformed("%s body: %v", enc, err)
	}
	return out, nil
}

// readCapped reads r to the end, failing with ErrTooLarge as soon as more
// than max bytes arrive. size is the expected length (-1 when unknown):
// a usual event's buffer starts that large so it is read without
// regrowing. Larger claims get no head start, so a declared length costs
// no memory before its bytes arrive.
func readCapped(r io.Reader, max, size int64) ([]byte, error) {
	var buf bytes.Buffer
	if size > 0 && size <= max && size <= maxPresize {
		buf.Grow(int(size) + bytes.MinRead)
	}
	n, err := buf.ReadFrom(io.LimitReader(r, max+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge("body over %d bytes", max)
		}
		return nil, err
	}
	if n > max {
		return nil, tooLarge("body over %d bytes", max)
	}
	return buf.Bytes(), nil
}

// tokenBucket is a per-key event budget: Rate tokens a second, up to Burst.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate float64, burst int, now time.Time) *tokenBucket {
	return &tokenBucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

func (b *tokenBucket) refill(now time.Time) {
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = math.Min(b.burst, b.tokens+dt*b.rate)
		b.last = now
	}
}

// take spends n tokens if all n are there. When they are not it spends
// nothing and says how long until they would be, in whole seconds (at
// least 1), which is what Retry-After carries.
func (b *tokenBucket) take(n int, now time.Time) (ok bool, retryAfter int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	need := float64(n)
	if need > b.burst {
		need = b.burst // a batch larger than the burst waits for a full bucket
	}
	if b.tokens >= float64(n) {
		b.tokens -= float64(n)
		return true, 0
	}
	wait := (need - b.tokens) / b.rate
	secs := int(math.Ceil(wait))
	if secs < 1 {
		secs = 1
	}
	return false, secs
}

// empty reports whether not even one token is left, so a request can be
// turned away before its body is read.
func (b *tokenBucket) empty(now time.Time) (bool, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	if b.tokens >= 1 {
		return false, 0
	}
	secs := int(math.Ceil((1 - b.tokens) / b.rate))
	if secs < 1 {
		secs = 1
	}
	return true, secs
}

// Names an event's release and environment can be counted under instead
// of their own.
const (
	// OtherReleases counts the events of releases beyond a key's
	// MaxReleases in a window.
	OtherReleases = "(other releases)"
	// OtherEnvironments counts the events of environments beyond a key's
	// MaxEnvironments in a window.
	OtherEnvironments = "(other environments)"
	// NoEnvironment counts events that name no environment (sentry-go
	// sends none unless SENTRY_ENVIRONMENT or the option is set).
	NoEnvironment = "(no environment)"
)

// Longest names accepted: Sentry's own limits (release names of at most
// 200 characters, environment names of at most 64).
const (
	MaxReleaseLen     = 200
	MaxEnvironmentLen = 64
)

// checkNames refuses release and environment names Sentry would refuse:
// too long, or with control characters (a NUL or newline used to cut a
// name silently).
func checkNames(ev Event) error {
	if len(ev.Release) > MaxReleaseLen {
		return malformed("release name of %d bytes (at most %d)", len(ev.Release), MaxReleaseLen)
	}
	if len(ev.Environment) > MaxEnvironmentLen {
		return malformed("environment name of %d bytes (at most %d)", len(ev.Environment), MaxEnvironmentLen)
	}
	for _, s := range []struct{ what, name string }{{"release", ev.Release}, {"environment", ev.Environment}} {
		for _, r := range s.name {
			if unicode.IsControl(r) {
				return malformed("%s name contains the control character %U", s.what, r)
			}
		}
	}
	return nil
}

// nameSet is the distinct names one key used within a window, with when
// each was last seen.
type nameSet struct {
	seen   map[string]time.Time
	warned time.Time // when a name was last turned away, so it is said once a window
}

// admit reports whether name may be counted on its own: it was seen
// within the window, or there is room for it under max.
func (n *nameSet) admit(name string, now time.Time, max int, window time.Duration) bool {
	if _, ok := n.seen[name]; ok {
		n.seen[name] = now
		return true
	}
	if len(n.seen) >= max {
		for k, at := range n.seen {
			if now.Sub(at) > window {
				delete(n.seen, k)
			}
		}
	}
	if len(n.seen) >= max {
		return false
	}
	n.seen[name] = now
	return true
}

// firstRefusal reports whether this is the first name turned away in the
// window, so the ingest says so once rather than per event.
func (n *nameSet) firstRefusal(now time.Time, window time.Duration) bool {
	if !n.warned.IsZero() && now.Sub(n.warned) < window {
		return false
	}
	n.warned = now
	return true
}

// keyNames is what one project key reported lately.
type keyNames struct {
	mu       sync.Mutex
	releases nameSet
	envs     nameSet
}

func newKeyNames() *keyNames {
	return &keyNames{releases: nameSet{seen: map[string]time.Time{}}, envs: nameSet{seen: map[string]time.Time{}}}
}
