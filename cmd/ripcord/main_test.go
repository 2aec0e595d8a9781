package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func ripcord(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidateAcceptsTheShippedExample(t *testing.T) {
	code, out, errs := ripcord(t, "validate", "-c", "../../docs/ripcord.example.yaml")
	if code != exitOK {
		t.Fatalf("exit %d, stderr: %s", code, errs)
	}
	if !strings.Contains(out, "ok (project shop") {
		t.Fatalf("stdout = %q", out)
	}
}

func TestValidateReportsFileLineColAndFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ripcord.yaml")
	body := "project: shop\nservices:\n  - name: api\n    pipline: {}\nenvironments: []\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := ripcord(t, "validate", "--config", path)
	if code != exitFailed {
		t.Fatalf("exit %d, want %d", code, exitFailed)
	}
	want := path + `:4:5: unknown key "pipline" in services[0]; did you mean "pipeline"?`
	if !strings.Contains(errs, want) {
		t.Fatalf("stderr = %q\nwant it to contain %q", errs, want)
	}
}

func TestMissingConfigSaysWhichFile(t *testing.T) {
	code, _, errs := ripcord(t, "validate", "-c", filepath.Join(t.TempDir(), "nope.yaml"))
	if code != exitFailed || !strings.Contains(errs, "nope.yaml") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{{"bogus"}, {"validate", "--nope"}, {"version", "extra"}} {
		if code, _, _ := ripcord(t, args...); code != exitUsage {
			t.Errorf("ripcord %v exited %d, want %d", args, code, exitUsage)
		}
	}
}

func TestConfigSchemaIsJSON(t *testing.T) {
	code, out, errs := ripcord(t, "config", "schema")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var schema struct {
		Properties map[string]any `json:"properties"`
	}
	if err := json.Unmarshal([]byte(out), &schema); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	for _, k := range []string{"project", "services", "environments", "plugins", "store"} {
		if _, ok := schema.Properties[k]; !ok {
			t.Errorf("schema lacks %q", k)
		}
	}
}

func TestVersionJSON(t *testing.T) {
	code, out, _ := ripcord(t, "version", "--json")
	var v map[string]string
	if code != exitOK || json.Unmarshal([]byte(out), &v) != nil || v["version"] == "" {
		t.Fatalf("exit %d, out %q", code, out)
	}
}
