package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse: whatever the input, it must
// return a file or a located config error, never panic.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("..", "..", "docs", "ripcord.example.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte(secretConfig))
	f.Add([]byte("a: &x [*x, *x]\nb: *x\n"))
	env := envOf(map[string]string{"RESTIC_PASSWORD": "pw", "DB_PASSWORD": "pg"})
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.yaml", data, Options{Providers: BuiltinProviders, LookupEnv: env})
		if err == nil {
			if file == nil {
				t.Fatal("no error and no file")
			}
			return
		}
		var single *Error
		var list ErrorList
		switch {
		case errors.As(err, &list):
			if len(list) < 2 || len(list) > maxReported+1 {
				t.Fatalf("error list of %d", len(list))
			}
		case errors.As(err, &single):
			if single.Pos.File != "fuzz.yaml" || single.Pos.Line < 1 || single.Pos.Col < 1 {
				t.Fatalf("error without a position: %v", err)
			}
		default:
			t.Fatalf("error of type %T: %v", err, err)
		}
	})
}

func BenchmarkParseExample(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "ripcord.example.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	o := Options{Providers: BuiltinProviders, LookupEnv: noEnv}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("ripcord.example.yaml", data, o); err != nil {
			b.Fatal(err)
		}
	}
}
