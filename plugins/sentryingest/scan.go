package sentryingest

import (
	"bytes"
	"encoding/json"
)

// maxScanDepth matches encoding/json's nesting limit; deeper input is left
// to encoding/json, which reports it.
const maxScanDepth = 10000

// scanner walks one JSON text in memory, validating it as it goes, for
// the single-pass decoders of envelope headers and events. It never
// allocates except to unescape a string that has escapes.
//
// bad is set when the input is not valid JSON or is not in a shape the
// single-pass decoders model exactly (a value of the wrong type for a
// field, a key that only matches a field case-insensitively or through
// escapes, a repeated list field). Callers then decode the input with
// encoding/json instead, so results and error texts are encoding/json's
// in every case; the fast path only ever decides inputs it models.
type scanner struct {
	data  []byte
	pos   int
	depth int
	bad   bool
}

func (s *scanner) fail() {
	s.bad = true
	s.pos = len(s.data)
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte, 0 at the end.
func (s *scanner) peek() byte {
	s.skipSpace()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// end reports whether only white space is left: the text held one value.
func (s *scanner) end() bool {
	s.skipSpace()
	return !s.bad && s.pos == len(s.data)
}

// open consumes the '{' or '[' at s.pos.
func (s *scanner) open() {
	s.pos++
	s.depth++
	if s.depth > maxScanDepth {
		s.fail()
	}
}

// nextKey advances to the next member of the object being read: first is
// true right after open. It returns the key's raw bytes (without quotes)
// and whether they hold escapes, with s.pos at the member's value, or
// more=false once the closing brace is consumed.
func (s *scanner) nextKey(first bool) (key []byte, esc, more bool) {
	c := s.peek()
	if c == '}' && first {
		s.pos++
		s.depth--
		return nil, false, false
	}
	if !first {
		switch c {
		case '}':
			s.pos++
			s.depth--
			return nil, false, false
		case ',':
			s.pos++
			c = s.peek()
		default:
			s.fail()
			return nil, false, false
		}
	}
	if c != '"' {
		s.fail()
		return nil, false, false
	}
	start, end, esc := s.str()
	if s.bad || s.peek() != ':' {
		s.fail()
		return nil, false, false
	}
	s.pos++
	s.skipSpace()
	return s.data[start:end], esc, true
}

// nextElem advances to the next element of the array being read, with
// s.pos at it, or returns false once the closing bracket is consumed.
func (s *scanner) nextElem(first bool) bool {
	c := s.peek()
	if c == ']' {
		if first {
			s.pos++
			s.depth--
			return false
		}
	}
	if !first {
		switch c {
		case ']':
			s.pos++
			s.depth--
			return false
		case ',':
			s.pos++
			s.skipSpace()
		default:
			s.fail()
			return false
		}
	}
	if s.pos >= len(s.data) {
		s.fail()
		return false
	}
	return !s.bad
}

// str reads the string at s.pos and returns the bounds of its contents
// and whether they hold escapes.
func (s *scanner) str() (start, end int, esc bool) {
	d := s.data
	i := s.pos + 1
	start = i
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return start, i, esc
		case c == '\\':
			esc = true
			if i+1 >= len(d) {
				s.fail()
				return 0, 0, false
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) || !isHex(d[i+2]) || !isHex(d[i+3]) || !isHex(d[i+4]) || !isHex(d[i+5]) {
					s.fail()
					return 0, 0, false
				}
				i += 6
			default:
				s.fail()
				return 0, 0, false
			}
		case c < 0x20:
			s.fail()
			return 0, 0, false
		default:
			i++
		}
	}
	s.fail()
	return 0, 0, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// number reads the number at s.pos.
func (s *scanner) number() {
	d, i := s.data, s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	default:
		s.fail()
		return
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || !isDigit(d[i]) {
			s.fail()
			return
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || !isDigit(d[i]) {
			s.fail()
			return
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	s.pos = i
}

// literal reads true, false or null at s.pos.
func (s *scanner) literal(word string) {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(word)) {
		s.fail()
		return
	}
	s.pos += len(word)
}

// skip reads and discards the value at s.pos.
func (s *scanner) skip() {
	switch c := s.peek(); c {
	case '{':
		s.open()
		for first := true; !s.bad; first = false {
			if _, _, more := s.nextKey(first); !more {
				return
			}
			s.skip()
		}
	case '[':
		s.open()
		for first := true; !s.bad; first = false {
			if !s.nextElem(first) {
				return
			}
			s.skip()
		}
	case '"':
		s.str()
	case 't':
		s.literal("true")
	case 'f':
		s.literal("false")
	case 'n':
		s.literal("null")
	default:
		if c == '-' || isDigit(c) {
			s.number()
			return
		}
		s.fail()
	}
}

// null consumes a null at s.pos if there is one.
// once readies a nested object or list that may appear once: a repeated
// key fails (encoding/json would merge it into what was decoded before,
// and the fallback decoder decides those), null is skipped, and anything
// but open fails. It reports whether to descend into the value.
func (s *scanner) once(seen *bool, open byte) bool {
	if *seen {
		s.fail()
		return false
	}
	*seen = true
	if s.null() {
		return false
	}
	if s.peek() != open {
		s.fail()
		return false
	}
	return true
}

func (s *scanner) null() bool {
	if s.peek() == 'n' {
		s.literal("null")
		return !s.bad
	}
	return false
}

// stringField decodes the value at s.pos into a string field the way
// encoding/json does: a string replaces *dst, null leaves it alone, and
// anything else is a type error (which the fast path does not model).
func (s *scanner) stringField(dst *[]byte) {
	switch s.peek() {
	case '"':
		*dst = s.stringValue()
	case 'n':
		s.literal("null")
	default:
		s.fail()
	}
}

// stringValue reads the string at s.pos and returns its unescaped bytes,
// which alias the input when it has no escapes.
func (s *scanner) stringValue() []byte {
	from := s.pos
	start, end, esc := s.str()
	if s.bad {
		return nil
	}
	if !esc {
		return s.data[start:end]
	}
	// Escapes are rare in the fields read; encoding/json unescapes them,
	// so lone surrogates and the like come out exactly as it makes them.
	var v string
	if err := json.Unmarshal(s.data[from:s.pos], &v); err != nil {
		s.fail()
		return nil
	}
	return []byte(v)
}

// field matches key against the names of the struct being decoded. It
// returns the exact name matched, or "" for a key encoding/json would
// ignore. A key that encoding/json would match some other way (escaped,
// or only case-insensitively) sets bad.
func (s *scanner) field(key []byte, esc bool, names ...string) string {
	if !esc {
		for _, n := range names {
			if string(key) == n {
				return n
			}
		}
	}
	for _, n := range names {
		// encoding/json folds names so that equality of folded names is
		// exactly bytes.EqualFold.
		if esc || bytes.EqualFold(key, []byte(n)) {
			s.fail()
			return ""
		}
	}
	return ""
}

// scanEvent decodes an event (trimmed, starting with '{') into f in one
// pass, with encoding/json's semantics for the fields read: a repeated
// key's last value wins, null leaves a string as it was, `logentry`
// objects merge. It returns false when the input is left to
// encoding/json (see scanner).
func scanEvent(data []byte, f *eventFields) bool {
	s := scanner{data: data}
	var (
		le, msg     logFields // logentry, and message when an object
		msgSet      bool      // the last `message` was a string or an object
		msgStr      []byte    // the last `message` when a string
		msgIsString bool
	)
	s.open()
	for first := true; !s.bad; first = false {
		key, esc, more := s.nextKey(first)
		if !more {
			break
		}
		switch s.field(key, esc, "event_id", "type", "level", "environment", "release",
			"fingerprint", "message", "logentry", "exception") {
		case "event_id":
			s.stringField(&f.eventID)
		case "type":
			s.stringField(&f.typ)
		case "level":
			s.stringField(&f.level)
		case "environment":
			s.stringField(&f.environment)
		case "release":
			s.stringField(&f.release)
		case "fingerprint":
			s.fingerprint(f)
		case "message":
			// A json.RawMessage: the last one wins whole.
			msgSet, msgIsString, msgStr, msg = false, false, nil, logFields{}
			switch s.peek() {
			case 'n':
				s.literal("null")
			case '"':
				msgSet, msgIsString, msgStr = true, true, s.stringValue()
			case '{':
				msgSet = true
				s.logFields(&msg)
			default:
				s.fail() // "message is neither a string nor an object"
			}
		case "logentry":
			// A pointer: null clears it, an object merges into it.
			if s.null() {
				le = logFields{}
			} else if s.peek() == '{' {
				s.logFields(&le)
			} else {
				s.fail()
			}
		case "exception":
			// A json.RawMessage: the last one wins whole.
			f.hasExc, f.excType, f.excValue, f.hasFrame, f.frame = false, nil, nil, false, frameFields{}
			s.exception(f)
		default:
			s.skip()
		}
	}
	if !s.end() {
		return false
	}
	// decodeMessage's precedence: logentry first, then message.
	f.template, f.formatted = le.message, le.formatted
	if msgSet {
		m := msg
		if msgIsString {
			m = logFields{message: msgStr, formatted: msgStr}
		}
		if len(f.template) == 0 {
			f.template = m.message
		}
		if len(f.formatted) == 0 {
			f.formatted = m.formatted
		}
	}
	if len(f.template) == 0 {
		f.template = f.formatted
	}
	if len(f.formatted) == 0 {
		f.formatted = f.template
	}
	return true
}

// logFields is rawLogEntry.
type logFields struct{ message, formatted []byte }

// logFields decodes the object at s.pos into l, merging.
func (s *scanner) logFields(l *logFields) {
	s.open()
	for first := true; !s.bad; first = false {
		key, esc, more := s.nextKey(first)
		if !more {
			return
		}
		switch s.field(key, esc, "message", "formatted") {
		case "message":
			s.stringField(&l.message)
		case "formatted":
			s.stringField(&l.formatted)
		default:
			s.skip()
		}
	}
}

// fingerprint decodes `fingerprint` ([]json.RawMessage) into f.
func (s *scanner) fingerprint(f *eventFields) {
	switch s.peek() {
	case 'n':
		s.literal("null")
		f.fingerprint = nil
		return
	case '[':
	default:
		s.fail()
		return
	}
	s.open()
	f.fingerprint = f.fingerprint[:0]
	if f.fingerprint == nil {
		f.fingerprint = make([][]byte, 0, 4)
	}
	for first := true; !s.bad; first = false {
		if !s.nextElem(first) {
			return
		}
		switch s.data[s.pos] {
		case '"':
			f.fingerprint = append(f.fingerprint, s.stringValue())
		case 'n':
			// Decoding null into a string leaves it empty.
			s.literal("null")
			f.fingerprint = append(f.fingerprint, nil)
		default:
			from := s.pos
			s.skip()
			f.fingerprint = append(f.fingerprint, s.data[from:s.pos])
		}
	}
}

// exception decodes `exception`: a list, {"values": list}, or null.
func (s *scanner) exception(f *eventFields) {
	switch s.peek() {
	case 'n':
		s.literal("null")
	case '[':
		s.exceptionList(f)
	case '{':
		s.open()
		seen := false
		for first := true; !s.bad; first = false {
			key, esc, more := s.nextKey(first)
			if !more {
				return
			}
			switch s.field(key, esc, "values") {
			case "values":
				if s.once(&seen, '[') {
					s.exceptionList(f)
				}
			default:
				s.skip()
			}
		}
	default:
		s.fail()
	}
}

// exceptionList decodes a list of exceptions, keeping the last.
func (s *scanner) exceptionList(f *eventFields) {
	s.open()
	for first := true; !s.bad; first = false {
		if !s.nextElem(first) {
			return
		}
		f.hasExc, f.excType, f.excValue, f.hasFrame, f.frame = true, nil, nil, false, frameFields{}
		switch s.data[s.pos] {
		case 'n':
			s.literal("null") // a zero exception
		case '{':
			s.exceptionObject(f)
		default:
			s.fail()
		}
	}
}

func (s *scanner) exceptionObject(f *eventFields) {
	var module []byte
	seenStack := false
	s.open()
	for first := true; !s.bad; first = false {
		key, esc, more := s.nextKey(first)
		if !more {
			return
		}
		switch s.field(key, esc, "type", "value", "module", "stacktrace") {
		case "type":
			s.stringField(&f.excType)
		case "value":
			s.stringField(&f.excValue)
		case "module":
			s.stringField(&module)
		case "stacktrace":
			if s.once(&seenStack, '{') {
				s.stacktrace(f)
			}
		default:
			s.skip()
		}
	}
}

func (s *scanner) stacktrace(f *eventFields) {
	seenFrames := false
	s.open()
	for first := true; !s.bad; first = false {
		key, esc, more := s.nextKey(first)
		if !more {
			return
		}
		switch s.field(key, esc, "frames") {
		case "frames":
			if s.once(&seenFrames, '[') {
				s.frames(f)
			}
		default:
			s.skip()
		}
	}
}

// frames decodes a list of frames, keeping the last.
func (s *scanner) frames(f *eventFields) {
	s.open()
	for first := true; !s.bad; first = false {
		if !s.nextElem(first) {
			return
		}
		f.hasFrame, f.frame = true, frameFields{}
		switch s.data[s.pos] {
		case 'n':
			s.literal("null") // a zero frame
		case '{':
			s.open()
			for first := true; !s.bad; first = false {
				key, esc, more := s.nextKey(first)
				if !more {
					break
				}
				switch s.field(key, esc, "module", "function", "filename", "abs_path") {
				case "module":
					s.stringField(&f.frame.module)
				case "function":
					s.stringField(&f.frame.function)
				case "filename":
					s.stringField(&f.frame.filename)
				case "abs_path":
					s.stringField(&f.frame.absPath)
				default:
					s.skip()
				}
			}
		default:
			s.fail()
		}
	}
}

// scanHeader decodes an envelope or item header (trimmed, starting with
// '{') in one pass: the string field name and, when withLength, the raw
// value of "length" (a json.RawMessage: the last one wins, null included).
// It returns false when the line is left to encoding/json.
func scanHeader(data []byte, name string, withLength bool) (val, length []byte, ok bool) {
	s := scanner{data: data}
	names := []string{name, "length"}
	if !withLength {
		names = names[:1]
	}
	s.open()
	for first := true; !s.bad; first = false {
		key, esc, more := s.nextKey(first)
		if !more {
			break
		}
		switch s.field(key, esc, names...) {
		case name:
			s.stringField(&val)
		case "length":
			from := s.pos
			s.skip()
			length = s.data[from:s.pos]
		default:
			s.skip()
		}
	}
	if !s.end() {
		return nil, nil, false
	}
	return val, length, true
}
