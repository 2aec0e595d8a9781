package sentryingest

import (
	"testing"
)

// FuzzParseEnvelope feeds arbitrary bytes to the envelope and event
// parsers: they must never panic, and an accepted envelope's items must
// lie within the input.
func FuzzParseEnvelope(f *testing.F) {
	f.Add(realEnvelope(f))
	f.Add([]byte("{}\n{\"type\":\"attachment\"}\n\n{\"type\":\"session\"}\n{\"sid\":\"x\"}"))
	f.Add([]byte("{}\n{\"type\":\"event\",\"length\":41}\n{\"message\":\"hello world\",\"level\":\"error\"}\n"))
	f.Add([]byte("{}\n{\"type\":\"event\"}\n{\"exception\":{\"values\":[{\"type\":\"E\",\"stacktrace\":{\"frames\":[{\"function\":\"f\"}]}}]},\"fingerprint\":[\"{{ default }}\",1]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseEnvelope(data, ParseLimits{MaxItems: 100, MaxEventSize: 1 << 16})
		if err != nil {
			return
		}
		total := 0
		for _, it := range env.Items {
			total += len(it.Payload)
			if it.Type == "event" {
				_, _, _ = ParseEvent(it.Payload)
			}
		}
		if total > len(data) {
			t.Fatalf("items hold %d bytes of a %d-byte input", total, len(data))
		}
	})
}
