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
	Environment string // as the SDK sent it; "production" when missing
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
	defaultEnv     = "production"
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
	if !utf8.Valid(payload) {
		return Event{}, false, malformed("event is not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Event{}, false, malformed("event is not a JSON object")
	}
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
	ev = Event{
		EventID:     raw.EventID,
		Level:       normaliseLevel(raw.Level),
		Environment: raw.Environment,
		Release:     raw.Release,
	}
	if ev.Environment == "" {
		ev.Environment = defaultEnv
	}
	def, title := defaultGrouping(excs, template, formatted)
	ev.Title = truncateRunes(title, maxTitle)
	ev.Fingerprint = fingerprint(raw.Fingerprint, def)
	return ev, false, nil
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
func defaultGrouping(excs []rawException, template, formatted string) (fp, title string) {
	if n := len(excs); n > 0 {
		e := excs[n-1]
		typ := e.Type
		if typ == "" {
			typ = "Error"
		}
		frame := ""
		if e.Stacktrace != nil && len(e.Stacktrace.Frames) > 0 {
			frame = frameName(e.Stacktrace.Frames[len(e.Stacktrace.Frames)-1])
		}
		fp = "exception " + typ
		if frame != "" {
			fp += " at " + frame
		} else if e.Value != "" {
			// Without a stack the value is all that tells issues apart.
			fp += ": " + e.Value
		}
		title = typ
		if e.Value != "" {
			title += ": " + e.Value
		}
		return fp, title
	}
	if template != "" {
		return "message " + template, formatted
	}
	return "event without exception or message", "<unlabeled event>"
}

func frameName(f rawFrame) string {
	where := f.Module
	if where == "" {
		where = f.Filename
	}
	if where == "" {
		where = f.AbsPath
	}
	switch {
	case where != "" && f.Function != "":
		return where + "." + f.Function
	case f.Function != "":
		return f.Function
	default:
		return where
	}
}

// fingerprint applies the SDK's fingerprint, expanding "{{ default }}" to
// the default grouping. A fingerprint that is only "{{ default }}" is the
// default grouping. Long results are hashed so keys stay small.
func fingerprint(sdk []json.RawMessage, def string) string {
	parts := make([]string, 0, len(sdk))
	for _, raw := range sdk {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			s = string(bytes.TrimSpace(raw)) // numbers and the like, as written
		}
		if strings.TrimSpace(s) == "{{ default }}" || strings.TrimSpace(s) == "{{default}}" {
			s = def
		}
		parts = append(parts, s)
	}
	fp := def
	if len(parts) > 0 {
		fp = strings.Join(parts, " | ")
		if !(len(parts) == 1 && parts[0] == def) {
			fp = "custom " + fp
		}
	}
	if len(fp) > maxFingerprint {
		sum := sha256.Sum256([]byte(fp))
		return "sha256 " + hex.EncodeToString(sum[:16])
	}
	return fp
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
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
