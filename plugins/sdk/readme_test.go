package sdk

import (
	"os"
	"strings"
	"testing"
)

// The README's plugin is the file internal/readmeplugin/main.go, which
// the build compiles; this keeps the two identical.
func TestReadmePluginIsTheCompiledOne(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("internal/readmeplugin/main.go")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "## A complete backup source\n\n```go\n")
	if !ok {
		t.Fatal("README has no plugin block")
	}
	block, _, _ = strings.Cut(block, "```\n")
	if block != string(src) {
		t.Fatal("README's plugin differs from internal/readmeplugin/main.go")
	}
}
