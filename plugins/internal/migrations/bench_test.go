package migrations

import (
	"path/filepath"
	"testing"
)

// BenchmarkReadCorpus reads and classes the whole corpus (22 migrations,
// every layout) once per iteration, after the parser's one-off
// WebAssembly compile.
func BenchmarkReadCorpus(b *testing.B) {
	var files []File
	for _, l := range []string{LayoutGolangMigrate, LayoutGoose, LayoutFlyway, LayoutDbmate, LayoutPlain} {
		files = append(files, readDir(b, filepath.Join("testdata", l))...)
	}
	Classify("SELECT 1", 1) // compile the parser outside the timing
	b.ResetTimer()
	for b.Loop() {
		if ms := Read(files); len(ms) != 22 {
			b.Fatalf("%d migrations", len(ms))
		}
	}
}

// BenchmarkClassifyAddColumn is one typical one-statement migration.
func BenchmarkClassifyAddColumn(b *testing.B) {
	Classify("SELECT 1", 1)
	b.ResetTimer()
	for b.Loop() {
		Classify("ALTER TABLE orders ADD COLUMN gift_note text;\n", 1)
	}
}
