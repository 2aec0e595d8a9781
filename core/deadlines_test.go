package core

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWithDeadlineNamesWhatDidNotFinish(t *testing.T) {
	err := WithDeadline(context.Background(), "deploy", "fleet", 10*time.Millisecond, func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if err == nil || err.Error() != "deploy did not finish within 10ms (provider fleet)" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	// The caller's own cancellation is not the deadline's.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = WithDeadline(ctx, "deploy", "fleet", time.Hour, func(ctx context.Context) error { return ctx.Err() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled by the caller: %v", err)
	}
	for d, want := range map[time.Duration]string{10 * time.Minute: "10m", 90 * time.Minute: "1h30m", time.Hour: "1h", 30 * time.Second: "30s", 1500 * time.Millisecond: "1.5s"} {
		if got := ShortDuration(d); got != want {
			t.Errorf("ShortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
