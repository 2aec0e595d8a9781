package sqlitestore

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// The cross-process test runs this test binary twice more as lock
// contenders. The environment tells a child what to do.
const (
	helperEnv       = "RIPCORD_SQLITESTORE_HELPER"
	helperDBEnv     = "RIPCORD_SQLITESTORE_DB"
	helperHolderEnv = "RIPCORD_SQLITESTORE_HOLDER"
	raceRefs        = 25
)

// raceResult is what a child reports for one ref it raced for.
type raceResult struct {
	Env      string `json:"env"`
	Acquired bool   `json:"acquired"`
	Token    string `json:"token,omitempty"`
	HeldBy   string `json:"held_by,omitempty"`
	Error    string `json:"error,omitempty"`
}

func raceRef(i int) core.Ref { return core.Ref{Service: "api", Env: fmt.Sprintf("env-%02d", i)} }

// TestHelperProcess is a lock contender when run by
// TestCrossProcessLockRace and skips otherwise. It opens the store, says
// "ready", waits for "go" on stdin (the start barrier), then races for
// every ref and prints its results as one JSON line.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "lock-race" {
		t.Skip("only runs as a child of TestCrossProcessLockRace")
	}
	ctx := context.Background()
	s, err := Open(ctx, os.Getenv(helperDBEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	holder := core.Actor{Name: os.Getenv(helperHolderEnv), Host: fmt.Sprintf("pid-%d", os.Getpid())}
	fmt.Println("ready")
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "go" {
		fmt.Fprintf(os.Stderr, "barrier: got %q, %v\n", line, err)
		os.Exit(2)
	}
	var results []raceResult
	for i := range raceRefs {
		ref := raceRef(i)
		r := raceResult{Env: ref.Env}
		l, _, err := s.AcquireLock(ctx, core.Lock{Ref: ref, Holder: holder, Reason: "race", ExpiresAt: time.Now().Add(time.Hour)})
		var held *core.LockHeldError
		switch {
		case err == nil:
			r.Acquired, r.Token = true, l.Token
		case errors.As(err, &held):
			r.HeldBy = held.Lock.Holder.Name
		default:
			r.Error = err.Error()
		}
		results = append(results, r)
	}
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
		os.Exit(2)
	}
	out, _ := json.Marshal(results)
	fmt.Println(string(out))
	os.Exit(0)
}

type contender struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr strings.Builder
}

func TestCrossProcessLockRace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "state.db")
	// Create the schema first so the race is over the locks alone.
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	var cs []*contender
	t.Cleanup(func() {
		for _, c := range cs {
			if c.cmd.ProcessState == nil {
				_ = c.cmd.Process.Kill()
				_ = c.cmd.Wait()
			}
		}
	})
	for _, name := range []string{"alice", "bob"} {
		c := &contender{name: name}
		c.cmd = exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		c.cmd.Env = append(os.Environ(), helperEnv+"=lock-race", helperDBEnv+"="+path, helperHolderEnv+"="+name)
		c.cmd.Stderr = &c.stderr
		if c.stdin, err = c.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		pipe, err := c.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		c.stdout = bufio.NewReader(pipe)
		if err := c.cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		cs = append(cs, c)
	}

	// Barrier: both children have the database open before either races.
	for _, c := range cs {
		line, err := c.stdout.ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "ready" {
			t.Fatalf("%s did not get ready: %q, %v; stderr: %s", c.name, line, err, c.stderr.String())
		}
	}
	for _, c := range cs {
		if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
			t.Fatalf("release %s: %v", c.name, err)
		}
	}

	results := map[string][]raceResult{}
	for _, c := range cs {
		out, err := io.ReadAll(c.stdout)
		if err != nil {
			t.Fatalf("read %s: %v", c.name, err)
		}
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("%s exited with %v; stderr: %s", c.name, err, c.stderr.String())
		}
		var rs []raceResult
		if err := json.Unmarshal([]byte(strings.TrimSpace(string(out))), &rs); err != nil {
			t.Fatalf("%s printed %q: %v", c.name, out, err)
		}
		if len(rs) != raceRefs {
			t.Fatalf("%s reported %d refs, want %d", c.name, len(rs), raceRefs)
		}
		results[c.name] = rs
	}

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	locks, err := s.Locks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]core.Lock{}
	for _, l := range locks {
		stored[l.Ref.Env] = l
	}

	wins := map[string]int{}
	for i := range raceRefs {
		a, b := results["alice"][i], results["bob"][i]
		if a.Error != "" || b.Error != "" {
			t.Fatalf("%s: unexpected errors: alice %q, bob %q", a.Env, a.Error, b.Error)
		}
		if a.Acquired == b.Acquired {
			t.Fatalf("%s: alice acquired=%v and bob acquired=%v; exactly one must win", a.Env, a.Acquired, b.Acquired)
		}
		winner, win, lose := "alice", a, b
		if b.Acquired {
			winner, win, lose = "bob", b, a
		}
		wins[winner]++
		if lose.HeldBy != winner {
			t.Errorf("%s: the loser was told %q holds it, want %q", a.Env, lose.HeldBy, winner)
		}
		l, ok := stored[a.Env]
		if !ok || l.Holder.Name != winner || l.Token != win.Token {
			t.Errorf("%s: stored lock %+v, want %s's with token %s", a.Env, l, winner, win.Token)
		}
	}
	t.Logf("wins over %d refs: %v", raceRefs, wins)
}
