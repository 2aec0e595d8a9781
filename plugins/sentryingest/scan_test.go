package sentryingest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"pgregory.net/rapid"
)

// trickyEvents are payloads whose decoding depends on encoding/json's
// finer points. ParseEvent must treat each exactly as encoding/json-based
// decoding (parseEventStd) does, whichever path decides it.
var trickyEvents = []string{
	`{}`,
	`{"level":"error","level":null}`,
	`{"level":null,"level":"Warning "}`,
	`{"LEVEL":"info"}`,
	`{"levеl":"info"}`, // Cyrillic e: not a match
	`{"le\u0076el":"info"}`,
	`{"release":"a\u00e9\ud83d\ude00\ud800x","environment":"st\"g"}`,
	`{"environment":""}`,
	`{"type":"transaction","exception":5}`,
	`{"type":"transac\u0074ion"}`,
	`{"type":"transaction","release":5}`,
	`{"release":7}`,
	`{"fingerprint":"x"}`,
	`{"fingerprint":[]}`,
	`{"fingerprint":null,"message":"m"}`,
	`{"fingerprint":["a"],"fingerprint":["b", 2, true, null, {"k" : [1, 2]}, "{{default}}", " {{ default }} "]}`,
	`{"fingerprint":["{{ default }}"],"message":"m"}`,
	`{"fingerprint":["message m"],"message":"m"}`,
	`{"fingerprint":["` + strings.Repeat("x", 300) + `"]}`,
	`{"message":"a","message":null}`,
	`{"message":{"message":"t %s","formatted":"t 1","message":null}}`,
	`{"message":{"formatted":"only formatted"}}`,
	`{"message":5}`,
	`{"message":[1]}`,
	`{"message":{"message":5}}`,
	`{"message":5,"message":"fine"}`,
	`{"logentry":{"message":"a"},"logentry":{"formatted":"b"}}`,
	`{"logentry":{"message":"a"},"logentry":null,"logentry":{"formatted":"b"}}`,
	`{"logentry":"x"}`,
	`{"logentry":{"message":"le"},"message":"msg"}`,
	`{"Logentry":{"message":"le"}}`,
	`{"exception":null}`,
	`{"exception":[]}`,
	`{"exception":[null]}`,
	`{"exception":[{"type":"A"},null]}`,
	`{"exception":[5]}`,
	`{"exception":"x"}`,
	`{"exception":{"values":null}}`,
	`{"exception":{"values":5}}`,
	`{"exception":{"Values":[{"type":"A"}]}}`,
	`{"exception":{"values":[{"type":"A","value":"v"}],"values":[{"type":"B"}]}}`,
	`{"exception":[{"type":"A","stacktrace":{"frames":[{"function":"f"}]},"stacktrace":null}]}`,
	`{"exception":[{"type":"A","stacktrace":{"frames":[{"function":"f"}],"frames":[]}}]}`,
	`{"exception":[{"type":"A","stacktrace":null}]}`,
	`{"exception":[{"type":"A","stacktrace":{"frames":null}}]}`,
	`{"exception":[{"type":"A","stacktrace":{"frames":[]}}]}`,
	`{"exception":[{"type":"A","stacktrace":{"frames":[{"function":"f"},null]}}]}`,
	`{"exception":[{"type":"A","stacktrace":{"frames":[{"abs_path":"/x.go"}]}}]}`,
	`{"exception":[{"type":"A","stacktrace":{"frames":[{"filename":"x.go","abs_path":"/x.go","function":"g","lineno":3}]}}]}`,
	`{"exception":[{"type":"A","stacktrace":{"frames":[{"function":5}]}}]}`,
	`{"exception":[{"type":"A","stacktrace":{"frames":[5]}}]}`,
	`{"exception":[{"type":"A","stacktrace":{"frames":{}}}]}`,
	`{"exception":[{"type":"A","stacktrace":[]}]}`,
	`{"exception":[{"type":"A","module":7}]}`,
	`{"exception":[{"Type":"A"}]}`,
	`{"exception":[{"type":"A"}],"exception":[{"type":"B","value":"b"}]}`,
	`{"exception":5,"exception":[{"type":"B"}]}`,
	`{"exception":[{"type":""}]}`,
	`{"exception":[{"value":"` + strings.Repeat("é", 300) + `"}]}`,
	`{"contexts":{"a":[1,2,{"b":null}],"c":-0.5e+10},"extra":{"level":5}}`,
	`{"level":"error",}`,
	`{"level":"error"} x`,
	`{"level":"error"}` + "\u00a0",
	`{"a":01}`,
	`{"a":1.}`,
	`{"a":-}`,
	`{"a":1e}`,
	`{"a":tru}`,
	`{"a":"\x}`,
	`{"a":"\u12"}`,
	"{\"a\":\"\t\"}",
	`{"a" 1}`,
	`{"a":1 "b":2}`,
	`{"a":[1,]}`,
	`{"a":[1 2]}`,
	`{`,
	`{"a":`,
	`{"a":[`,
	`{,}`,
	strings.Repeat(`{"a":`, 10002) + `1` + strings.Repeat(`}`, 10002),
}

func eventsAgree(t *testing.T, payload []byte) {
	t.Helper()
	ev, tx, err := ParseEvent(payload)
	trimmed := bytes.TrimSpace(payload)
	if !utf8.Valid(payload) || len(trimmed) == 0 || trimmed[0] != '{' {
		return
	}
	wantEv, wantTx, wantErr := parseEventStd(trimmed)
	if ev != wantEv || tx != wantTx || (err == nil) != (wantErr == nil) ||
		(err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("payload %.200q:\n got  %+v %v %v\n want %+v %v %v", payload, ev, tx, err, wantEv, wantTx, wantErr)
	}
}

func TestParseEventAgreesWithEncodingJSON(t *testing.T) {
	for _, p := range trickyEvents {
		eventsAgree(t, []byte(p))
	}
	eventsAgree(t, realEvent(t))
}

func realEvent(t testing.TB) []byte {
	env, err := ParseEnvelope(realEnvelope(t), ParseLimits{})
	if err != nil {
		t.Fatal(err)
	}
	return env.Items[0].Payload
}

// What sentry-go sends must take the single pass: falling back would
// keep it correct but double the work.
func TestSentryGoPayloadsTakeTheSinglePass(t *testing.T) {
	var f eventFields
	if !scanEvent(bytes.TrimSpace(realEvent(t)), &f) {
		t.Error("the real sentry-go event fell back to encoding/json")
	}
	header, rest, _ := bytes.Cut(realEnvelope(t), []byte("\n"))
	if _, _, ok := scanHeader(header, "event_id", false); !ok {
		t.Error("the real envelope header fell back to encoding/json")
	}
	item, _, _ := bytes.Cut(rest, []byte("\n"))
	if typ, length, ok := scanHeader(item, "type", true); !ok || string(typ) != "event" || string(length) != "892" {
		t.Errorf("item header = %q %q %v", typ, length, ok)
	}
}

// headersAgree checks the single-pass header decoder against
// encoding/json on one line.
func headersAgree(t *testing.T, line []byte) {
	t.Helper()
	obj, err := headerObject(line)
	if err != nil {
		return
	}
	if id, _, ok := scanHeader(obj, "event_id", false); ok {
		var h envelopeHeader
		if err := json.Unmarshal(obj, &h); err != nil || h.EventID != string(id) {
			t.Fatalf("envelope header %q: scanned %q, encoding/json %q %v", line, id, h.EventID, err)
		}
	}
	if typ, length, ok := scanHeader(obj, "type", true); ok {
		var ih itemHeader
		if err := json.Unmarshal(obj, &ih); err != nil || ih.Type != string(typ) || !bytes.Equal(ih.Length, length) {
			t.Fatalf("item header %q: scanned %q %q, encoding/json %q %q %v", line, typ, length, ih.Type, ih.Length, err)
		}
	}
}

func TestHeadersAgreeWithEncodingJSON(t *testing.T) {
	for _, l := range []string{
		`{}`, `{"type":"event","length":12}`, `{"type":"event","length":null}`, `{"type":null,"type":"x"}`,
		`{"type":"a","type":"b","length":1,"length":"2"}`, `{"TYPE":"event"}`, `{"typ\u0065":"event"}`,
		`{"type":5}`, `{"type":"ev\u0065nt","length":{"a":[1]}}`, `{"event_id":"ab","event_id":null}`,
		`{"Event_ID":"x"}`, `{"event_id":"x",}`, `{"length":-1}`, `{"length":1e3}`, `{"type":"event"} `,
	} {
		headersAgree(t, []byte(l))
	}
}

// FuzzSinglePassAgrees checks on arbitrary input that whenever the
// single-pass decoders decide an event or header themselves, encoding/json
// decides it the same way.
func FuzzSinglePassAgrees(f *testing.F) {
	f.Add(realEvent(f))
	f.Add(realEnvelope(f))
	for _, p := range trickyEvents[:len(trickyEvents)-1] {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		eventsAgree(t, data)
		headersAgree(t, data)
	})
}

func TestIDResponseIsWhatTheEncoderWrites(t *testing.T) {
	for _, id := range []string{"0737c393369044fa888d6ddbe7887798", "ab", `a"b\c`, "<&>", "tab\there", "é\u2028x", "\x7f"} {
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(map[string]string{"id": id}); err != nil {
			t.Fatal(err)
		}
		if got := idResponse(id); string(got) != want.String() {
			t.Errorf("idResponse(%q) = %s, want %s", id, got, want.String())
		}
	}
}

// genJSON draws JSON texts built from the keys the decoders care about,
// mostly of the types they expect but with repeats, nulls, wrong types,
// case variants and escapes, so that draws reach deep into events and
// some take each fallback. shape is what the field expects: 's' string,
// 'a' list of objects, 'o' object, 'f' fingerprint list, 'm' message,
// '?' anything.
func genJSON(t *rapid.T, depth int, shape byte) string {
	keys := []string{"event_id", "type", "level", "environment", "release", "fingerprint", "message",
		"logentry", "exception", "values", "stacktrace", "frames", "module", "function", "filename",
		"abs_path", "value", "formatted", "length", "Level", "VALUES", "x"}
	strs := []string{`null`, `"error"`, `"transaction"`, `""`, `"{{ default }}"`, `"a\"b"`, `"\u00e9\ud800"`,
		`"{{default}}"`, `"fatal"`, `"` + strings.Repeat("z", 210) + `"`}
	scalars := append([]string{`7`, `-0.5e3`, `true`}, strs...)
	if depth >= 5 {
		return rapid.SampledFrom(strs).Draw(t, "leaf")
	}
	if rapid.IntRange(0, 9).Draw(t, "typed") == 0 {
		shape = '?' // a wrong type, now and then
	}
	switch shape {
	case 's':
		return rapid.SampledFrom(strs).Draw(t, "string")
	case 'm':
		if rapid.Bool().Draw(t, "message string") {
			return rapid.SampledFrom(strs).Draw(t, "string")
		}
		return genObject(t, depth, keys)
	case 'o':
		return genObject(t, depth, keys)
	case 'a', 'f':
		n := rapid.IntRange(0, 4).Draw(t, "elems")
		parts := make([]string, n)
		for i := range parts {
			if shape == 'f' {
				parts[i] = rapid.SampledFrom(scalars).Draw(t, "part")
			} else {
				parts[i] = genObject(t, depth+1, keys)
			}
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	switch rapid.IntRange(0, 2).Draw(t, "any") {
	case 0:
		return rapid.SampledFrom(scalars).Draw(t, "scalar")
	case 1:
		return genJSON(t, depth+1, 'a')
	}
	return genObject(t, depth, keys)
}

func genObject(t *rapid.T, depth int, keys []string) string {
	n := rapid.IntRange(0, 5).Draw(t, "members")
	parts := make([]string, n)
	for i := range parts {
		key := rapid.SampledFrom(keys).Draw(t, "key")
		parts[i] = `"` + key + `":` + genJSON(t, depth+1, shapeOf(key))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func shapeOf(key string) byte {
	switch key {
	case "exception", "values", "frames":
		return 'a'
	case "fingerprint":
		return 'f'
	case "logentry", "stacktrace":
		return 'o'
	case "message":
		return 'm'
	case "x", "length":
		return '?'
	}
	return 's'
}

func TestGeneratedEventsAgreeWithEncodingJSON(t *testing.T) {
	var fast, total int
	rapid.Check(t, func(rt *rapid.T) {
		payload := []byte(genObject(rt, 0, []string{"event_id", "type", "level", "release", "fingerprint",
			"message", "logentry", "exception", "exception", "exception", "environment", "extra"}))
		var f eventFields
		total++
		if scanEvent(payload, &f) {
			fast++
		}
		eventsAgree(t, payload)
	})
	// The draws must exercise the single pass, not only the fallback.
	if fast*10 < total {
		t.Errorf("only %d of %d generated events took the single pass", fast, total)
	}
	t.Logf("%d of %d generated events took the single pass", fast, total)
}
