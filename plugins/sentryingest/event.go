package sentryingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Event is what the ingest keeps of one error event.
type Event struct {
	EventID     string
	Level       string // normalised: error, fatal, warning, info, debug
	Environment string // as the SDK sent it; "" when missing
	Release     string
	Fingerprint string
	Title       string
}

// Counted reports whether the event counts as an error: level error or
// fatal. A missing level counts, since Sentry treats it as error.
func (e Event) Counted() bool { return e.Level == "error" || e.Level == "fatal" }

const (
	maxTitle       = 200 // runes, like Sentry's tag value limit
	maxFingerprint = 200 // bytes; longer fingerprints are hashed
)

type rawEvent struct {
	EventID     string            `json:"event_id"`
	Type        string            `json:"type"`
	Level       string            `json:"level"`
	Environment string            `json:"environment"`
	Release     string            `json:"release"`
	Fingerprint []json.RawMessage `json:"fingerprint"`
	Message     json.RawMessage   `json:"message"`
	LogEntry    *rawLogEntry      `json:"logentry"`
	Exception   json.RawMessage   `json:"exception"`
}

type rawLogEntry struct {
	Message   string `json:"message"`
	Formatted string `json:"formatted"`
}

type rawException struct {
	Type       string `json:"type"`
	Value      string `json:"value"`
	Module     string `json:"module"`
	Stacktrace *struct {
		Frames []rawFrame `json:"frames"`
	} `json:"stacktrace"`
}

type rawFrame struct {
	Module   string `json:"module"`
	Function string `json:"function"`
	Filename string `json:"filename"`
	AbsPath  string `json:"abs_path"`
}

// ParseEvent decodes one event payload (an envelope event item or a legacy
// store body). isTransaction is true for a store body that is really a
// transaction, which is never counted.
func ParseEvent(payload []byte) (ev Event, isTransaction bool, err error) {
	return parseEvent(payload, false)
}

// parseEvent is ParseEvent; utf8Checked says the caller already checked
// that payload is valid UTF-8 (ParseEnvelope does for event items).
//
// The payload is decoded in one pass by a scanner that reads only the
// fields counted. Input it does not model exactly (malformed JSON, a
// field of the wrong type, a key matching only case-insensitively, a
// repeated list field) is decoded by encoding/json instead, so every
// result and every error is the one encoding/json gives.
func parseEvent(payload []byte, utf8Checked bool) (ev Event, isTransaction bool, err error) {
	if !utf8Checked && !utf8.Valid(payload) {
		return Event{}, false, malformed("event is not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Event{}, false, malformed("event is not a JSON object")
	}
	var f eventFields
	if scanEvent(trimmed, &f) {
		if string(f.typ) == "transaction" {
			return Event{}, true, nil
		}
		return f.event(), false, nil
	}
	return parseEventStd(trimmed)
}

// parseEventStd decodes an event with encoding/json: the reference the
// single-pass scanner agrees with, and the decoder of everything it
// leaves alone.
func parseEventStd(trimmed []byte) (ev Event, isTransaction bool, err error) {
	var raw rawEvent
	if err := json.Unmarshal(trimmed, &raw); err != nil {
		return Event{}, false, malformed("event JSON: %s", shortJSONError(err))
	}
	if raw.Type == "transaction" {
		return Event{}, true, nil
	}
	excs, err := decodeExceptions(raw.Exception)
	if err != nil {
		return Event{}, false, err
	}
	template, formatted, err := decodeMessage(raw.Message, raw.LogEntry)
	if err != nil {
		return Event{}, false, err
	}
	f := eventFields{
		eventID:     []byte(raw.EventID),
		level:       []byte(raw.Level),
		environment: []byte(raw.Environment),
		release:     []byte(raw.Release),
		template:    []byte(template),
		formatted:   []byte(formatted),
	}
	if raw.Fingerprint != nil {
		f.fingerprint = make([][]byte, 0, len(raw.Fingerprint))
		for _, r := range raw.Fingerprint {
			var s string
			if err := json.Unmarshal(r, &s); err != nil {
				s = string(bytes.TrimSpace(r)) // numbers and the like, as written
			}
			f.fingerprint = append(f.fingerprint, []byte(s))
		}
	}
	if n := len(excs); n > 0 {
		e := excs[n-1]
		f.hasExc = true
		f.excType, f.excValue = []byte(e.Type), []byte(e.Value)
		if e.Stacktrace != nil && len(e.Stacktrace.Frames) > 0 {
			fr := e.Stacktrace.Frames[len(e.Stacktrace.Frames)-1]
			f.hasFrame = true
			f.frame = frameFields{module: []byte(fr.Module), function: []byte(fr.Function),
				filename: []byte(fr.Filename), absPath: []byte(fr.AbsPath)}
		}
	}
	return f.event(), false, nil
}

// eventFields is what an event's grouping and labels are made from, as
// decoded by either decoder.
type eventFields struct {
	eventID, typ, level, environment, release []byte

	// fingerprint holds the SDK's fingerprint parts as text (strings
	// unescaped, other values as written); nil when it set none.
	fingerprint [][]byte

	// template and formatted are the message as decodeMessage resolves
	// them from `logentry` and `message`.
	template, formatted []byte

	// The last exception, and the top frame of its stack.
	hasExc            bool
	excType, excValue []byte
	hasFrame          bool
	frame             frameFields
}

type frameFields struct {
	module, function, filename, absPath []byte
}

// event builds the Event: level normalised, default environment, title
// and fingerprint.
func (f *eventFields) event() Event {
	ev := Event{
		EventID:     string(f.eventID),
		Level:       normaliseLevelBytes(f.level),
		Environment: string(f.environment),
		Release:     string(f.release),
	}
	var defBuf, titleBuf [256]byte
	def, title := f.defaultGrouping(defBuf[:0], titleBuf[:0])
	ev.Title = truncateRunes(title, maxTitle)
	ev.Fingerprint = fingerprint(f.fingerprint, def)
	return ev
}

// normaliseLevelBytes is normaliseLevel without a copy for the levels
// SDKs send.
func normaliseLevelBytes(l []byte) string {
	switch string(l) {
	case "", "error":
		return "error"
	case "fatal":
		return "fatal"
	case "warning":
		return "warning"
	case "info":
		return "info"
	case "debug":
		return "debug"
	}
	return normaliseLevel(string(l))
}

func normaliseLevel(l string) string {
	switch l = strings.ToLower(strings.TrimSpace(l)); l {
	case "", "error":
		return "error"
	case "critical", "fatal":
		return "fatal"
	case "warn", "warning":
		return "warning"
	default:
		return l
	}
}

// decodeExceptions accepts both `[...]` (what sentry-go sends) and
// `{"values": [...]}` (the documented interface).
func decodeExceptions(raw json.RawMessage) ([]rawException, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []rawException
	switch raw[0] {
	case '[':
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, malformed("exception: %s", shortJSONError(err))
		}
	case '{':
		var wrapped struct {
			Values []rawException `json:"values"`
		}
		if err := json.Unmarshal(raw, &wrapped); err != nil {
			return nil, malformed("exception: %s", shortJSONError(err))
		}
		list = wrapped.Values
	default:
		return nil, malformed("exception is neither a list nor an object")
	}
	return list, nil
}

// decodeMessage returns the message template (what groups) and its
// formatted text (what a person reads). `message` is a string in sentry-go
// and an object in the documented interface; `logentry` is the newer name.
func decodeMessage(raw json.RawMessage, le *rawLogEntry) (template, formatted string, err error) {
	if le != nil {
		template, formatted = le.Message, le.Formatted
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && string(raw) != "null" {
		switch raw[0] {
		case '"':
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", "", malformed("message: %s", shortJSONError(err))
			}
			if template == "" {
				template = s
			}
			if formatted == "" {
				formatted = s
			}
		case '{':
			var m rawLogEntry
			if err := json.Unmarshal(raw, &m); err != nil {
				return "", "", malformed("message: %s", shortJSONError(err))
			}
			if template == "" {
				template = m.Message
			}
			if formatted == "" {
				formatted = m.Formatted
			}
		default:
			return "", "", malformed("message is neither a string nor an object")
		}
	}
	if template == "" {
		template = formatted
	}
	if formatted == "" {
		formatted = template
	}
	return template, formatted, nil
}

// defaultGrouping is the fingerprint Sentry's grouping would roughly give:
// the last exception's type and its top (crashing) frame, which is the
// last frame since Sentry lists frames oldest first. Line numbers are left
// out on purpose: they move with every release and would make every
// release look like a new issue. Without an exception it is the message.
// Both results are appended to the buffers given.
func (f *eventFields) defaultGrouping(fp, title []byte) ([]byte, []byte) {
	if f.hasExc {
		typ := f.excType
		if len(typ) == 0 {
			typ = []byte("Error")
		}
		fp = append(append(fp, "exception "...), typ...)
		if f.hasFrame && frameNonEmpty(f.frame) {
			fp = appendFrameName(append(fp, " at "...), f.frame)
		} else if len(f.excValue) > 0 {
			// Without a stack the value is all that tells issues apart.
			fp = append(append(fp, ": "...), f.excValue...)
		}
		title = append(title, typ...)
		if len(f.excValue) > 0 {
			title = append(append(title, ": "...), f.excValue...)
		}
		return fp, title
	}
	if len(f.template) > 0 {
		return append(append(fp, "message "...), f.template...), append(title, f.formatted...)
	}
	return append(fp, "event without exception or message"...), append(title, "<unlabeled event>"...)
}

func frameNonEmpty(fr frameFields) bool {
	return len(fr.module)+len(fr.filename)+len(fr.absPath)+len(fr.function) > 0
}

// appendFrameName appends "where.function", where is the module, else the
// file name, else the absolute path; either part alone when the other is
// missing.
func appendFrameName(b []byte, fr frameFields) []byte {
	where := fr.module
	if len(where) == 0 {
		where = fr.filename
	}
	if len(where) == 0 {
		where = fr.absPath
	}
	switch {
	case len(where) > 0 && len(fr.function) > 0:
		return append(append(append(b, where...), '.'), fr.function...)
	case len(fr.function) > 0:
		return append(b, fr.function...)
	default:
		return append(b, where...)
	}
}

// fingerprint applies the SDK's fingerprint, expanding "{{ default }}" to
// the default grouping. A fingerprint that is only "{{ default }}" is the
// default grouping. Long results are hashed so keys stay small.
func fingerprint(sdk [][]byte, def []byte) string {
	fp := def
	if len(sdk) > 0 {
		var buf []byte
		if !(len(sdk) == 1 && (isDefaultPart(sdk[0]) || bytes.Equal(sdk[0], def))) {
			buf = append(buf, "custom "...)
		}
		for i, s := range sdk {
			if i > 0 {
				buf = append(buf, " | "...)
			}
			if isDefaultPart(s) {
				s = def
			}
			buf = append(buf, s...)
		}
		fp = buf
	}
	if len(fp) > maxFingerprint {
		sum := sha256.Sum256(fp)
		return "sha256 " + hex.EncodeToString(sum[:16])
	}
	return string(fp)
}

func isDefaultPart(s []byte) bool {
	s = bytes.TrimSpace(s)
	return string(s) == "{{ default }}" || string(s) == "{{default}}"
}

func truncateRunes(s []byte, n int) string {
	if utf8.RuneCount(s) <= n {
		return string(s)
	}
	r := []rune(string(s))
	return string(r[:n-1]) + "…"
}

// shortJSONError keeps decode errors to a phrase; the full error may quote
// user data at length.
func shortJSONError(err error) string {
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &ute):
		return fmt.Sprintf("field %q has the wrong type", ute.Field)
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at offset %d", se.Offset)
	default:
		return "bad JSON"
	}
}
