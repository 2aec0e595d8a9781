package sentryingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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
	eventID, err := decodeEnvelopeHeader(line)
	if err != nil {
		return nil, malformed("envelope header: %v", err)
	}
	env := &Envelope{EventID: eventID}
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
		ih, err := decodeItemHeader(line)
		if err != nil {
			return nil, malformed("item %d header: %v", len(env.Items), err)
		}
		if ih.Type == "" {
			return nil, malformed("item %d: missing type", len(env.Items))
		}
		var payload []byte
		if len(ih.Length) > 0 && string(ih.Length) != "null" {
			n, ok := parseLength(ih.Length)
			if !ok {
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

// parseLength is strconv.ParseUint(string(b), 10, 31) without the copy.
func parseLength(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > 1<<31-1 {
			return 0, false
		}
	}
	return n, true
}

// decodeEnvelopeHeader decodes the envelope header line.
func decodeEnvelopeHeader(line []byte) (eventID string, err error) {
	obj, err := headerObject(line)
	if err != nil {
		return "", err
	}
	if id, _, ok := scanHeader(obj, "event_id", false); ok {
		return string(id), nil
	}
	var h envelopeHeader
	if err := json.Unmarshal(obj, &h); err != nil {
		return "", errors.New("bad JSON")
	}
	return h.EventID, nil
}

// decodeItemHeader decodes one item header line. Length aliases line.
func decodeItemHeader(line []byte) (itemHeader, error) {
	obj, err := headerObject(line)
	if err != nil {
		return itemHeader{}, err
	}
	if typ, length, ok := scanHeader(obj, "type", true); ok {
		return itemHeader{Type: itemType(typ), Length: length}, nil
	}
	var ih itemHeader
	if err := json.Unmarshal(obj, &ih); err != nil {
		return itemHeader{}, errors.New("bad JSON")
	}
	return ih, nil
}

// itemType returns typ as a string, without a copy for the item types
// SDKs send.
func itemType(typ []byte) string {
	switch string(typ) {
	case "event":
		return "event"
	case "transaction":
		return "transaction"
	case "session":
		return "session"
	case "sessions":
		return "sessions"
	case "attachment":
		return "attachment"
	case "client_report":
		return "client_report"
	case "check_in":
		return "check_in"
	case "log":
		return "log"
	case "span":
		return "span"
	case "profile":
		return "profile"
	}
	return string(typ)
}

// headerObject checks that a header line is a JSON object in valid UTF-8
// (encoding/json would silently replace invalid bytes) and returns it
// without surrounding white space.
func headerObject(line []byte) ([]byte, error) {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if !utf8.Valid(line) {
		return nil, errors.New("not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(line)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, errors.New("not a JSON object")
	}
	return trimmed, nil
}
