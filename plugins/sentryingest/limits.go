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
