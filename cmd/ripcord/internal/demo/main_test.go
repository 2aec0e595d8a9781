package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// asRipcordEnv makes the test binary act as `ripcord` with the demo
// commands, so built artifacts can launch it like the real binary.
const asRipcordEnv = "RIPCORD_DEMO_TEST_AS_RIPCORD"

func TestMain(m *testing.M) {
	if os.Getenv(asRipcordEnv) == "1" {
		demo := &cobra.Command{Use: "demo"}
		demo.AddCommand(Commands()...)
		root := &cobra.Command{Use: "ripcord", SilenceUsage: true}
		root.AddCommand(demo)
		if err := root.Execute(); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startService runs Service until the test ends and returns its base URL.
func startService(t *testing.T, o ServiceOptions) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	o.Ready = func(addr string) { ready <- addr }
	go func() { done <- Service(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Service returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Service did not return within 10s of its context ending")
		}
	})
	select {
	case addr := <-ready:
		return "http://" + addr
	case err := <-done:
		t.Fatalf("Service ended before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Service did not listen within 10s")
	}
	return ""
}

// getText fetches url and returns the status and body.
func getText(t *testing.T, url string) (int, string) {
	t.Helper()
	code, body, err := fetch(url)
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

// fetch is getText for goroutines other than the test's own.
func fetch(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", fmt.Errorf("reading %s: %w", url, err)
	}
	return resp.StatusCode, string(body), nil
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
