package spike

import (
	"time"

	"github.com/ripcordhq/ripcord/core"
)

var (
	prod = core.Ref{Service: "shop/api", Env: "production"}
	t0   = time.Date(2026, 3, 1, 21, 0, 0, 0, time.UTC)
)

func at(i int) time.Time { return t0.Add(time.Duration(i) * BucketWidth) }

func newTestMonitor(p Policy) *Monitor {
	return NewMonitor(prod, "v1.43.0", "v1.42.0", p, t0)
}
