package sentryingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Envelope is a parsed Sentry envelope: one header line, then items.
//
//	Envelope = Header { "\n" Item } [ "\n" ]
//	Item     = ItemHeader "\n" Payload
//
// Payload slices alias the input; they are valid as long as it is.
type Envelope struct {
	EventID string
	Items   []Item
}

// Item is one envelope item. Only Type and Payload matter to the ingest;
// every other item header field is ignored.
type Item struct {
	Type    string
	Payload []byte
}

// ParseLimits bounds what ParseEnvelope accepts.
type ParseLimits struct {
	MaxItems     int // items per envelope; 0 means DefaultMaxItems
	MaxEventSize int // bytes of one event item; 0 means DefaultMaxEventSize
}

// ErrMalformed marks input that is not a valid envelope or event; the
// server answers 400. ErrTooLarge marks input over a limit; it answers 413.
var (
	ErrMalformed = errors.New("malformed")
	ErrTooLarge  = errors.New("too large")
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

func tooLarge(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrTooLarge, fmt.Sprintf(format, args...))
}

type envelopeHeader struct {
	EventID string `json:"event_id"`
}

type itemHeader struct {
	Type   string          `json:"type"`
	Length json.RawMessage `json:"length"`
}

// ParseEnvelope splits data into its header and items. It checks structure
// only: header lines must be JSON objects in valid UTF-8, a declared length
// must be met exactly and be followed by a newline or the end, and event
// payloads must be valid UTF-8 within the event size limit. Item payloads
// of other types (attachments may be binary) are not inspected.
//
// An envelope with more than MaxItems items is rejected whole with
// ErrTooLarge: counting a prefix would make the count depend on item order.
func ParseEnvelope(data []byte, lim ParseLimits) (*Envelope, error) {
	if lim.MaxItems <= 0 {
		lim.MaxItems = DefaultMaxItems
	}
	if lim.MaxEventSize <= 0 {
		lim.MaxEventSize = DefaultMaxEventSize
	}
	line, rest, _ := cutLine(data)
	if len(bytes.TrimSpace(line)) == 0 {
		return nil, malformed("empty envelope header")
	}
	var h envelopeHeader
	if err := decodeHeaderLine(line, &h); err != nil {
		return nil, malformed("envelope header: %v", err)
	}
	env := &Envelope{EventID: h.EventID}
	for len(rest) > 0 {
		line, after, _ := cutLine(rest)
		if len(bytes.TrimSpace(line)) == 0 {
			// Only trailing newlines may follow the last item.
			if len(bytes.TrimSpace(after)) == 0 {
				break
			}
			return nil, malformed("item %d: empty item header", len(env.Items))
		}
		if len(env.Items) >= lim.MaxItems {
			return nil, tooLarge("more than %d items", lim.MaxItems)
		}
		var ih itemHeader
		if err := decodeHeaderLine(line, &ih); err != nil {
			return nil, malformed("item %d header: %v", len(env.Items), err)
		}
		if ih.Type == "" {
			return nil, malformed("item %d: missing type", len(env.Items))
		}
		var payload []byte
		if len(ih.Length) > 0 && string(ih.Length) != "null" {
			n, err := strconv.ParseUint(string(ih.Length), 10, 31)
			if err != nil {
				return nil, malformed("item %d: bad length %.20q", len(env.Items), ih.Length)
			}
			if uint64(len(after)) < n {
				return nil, malformed("item %d: length %d but %d bytes left", len(env.Items), n, len(after))
			}
			payload, after = after[:n], after[n:]
			if len(after) > 0 {
				if after[0] != '\n' {
					return nil, malformed("item %d: payload longer than its length %d", len(env.Items), n)
				}
				after = after[1:]
			}
		} else {
			payload, after, _ = cutLine(after)
		}
		if ih.Type == "event" {
			if len(payload) > lim.MaxEventSize {
				return nil, tooLarge("event item of %d bytes (limit %d)", len(payload), lim.MaxEventSize)
			}
			if !utf8.Valid(payload) {
				return nil, malformed("item %d: event is not valid UTF-8", len(env.Items))
			}
		}
		env.Items = append(env.Items, Item{Type: ih.Type, Payload: payload})
		rest = after
	}
	return env, nil
}

// cutLine returns data up to the first newline and what follows it.
func cutLine(data []byte) (line, rest []byte, found bool) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return data[:i], data[i+1:], true
	}
	return data, nil, false
}

// decodeHeaderLine decodes one header line, which must be a JSON object in
// valid UTF-8 (encoding/json would silently replace invalid bytes).
func decodeHeaderLine(line []byte, v any) error {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if !utf8.Valid(line) {
		return errors.New("not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(line)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return errors.New("not a JSON object")
	}
	if err := json.Unmarshal(trimmed, v); err != nil {
		return errors.New("bad JSON")
	}
	return nil
}
