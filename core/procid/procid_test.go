package procid

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
)

func TestSelfRuns(t *testing.T) {
	if got := Self().Check(); got != Running {
		t.Fatalf("this process is %s, want running", got)
	}
}

// A process that ended is gone, and an ID naming its pid with another
// start time (the pid reused by a later process) is gone too.
func TestEndedProcessAndReusedPidAreGone(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("start times come from /proc")
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	id, err := Of(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if id.Start == 0 || id.Boot == "" {
		t.Fatalf("ID of a running process = %+v; want its start time and boot", id)
	}
	if got := id.Check(); got != Running {
		t.Fatalf("a running sleep is %s", got)
	}
	reused := id
	reused.Start++
	if got := reused.Check(); got != Gone {
		t.Fatalf("the pid with another start time is %s, want gone", got)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if got := id.Check(); got != Gone {
		t.Fatalf("an ended process is %s, want gone", got)
	}
	other := id
	other.Host = "elsewhere"
	if got := other.Check(); got != Unknown {
		t.Fatalf("a process on another host is %s, want unknown", got)
	}
	if Exe(os.Getpid()) == "" {
		t.Fatal("Exe of this process is empty")
	}
}
