package sqlitestore

import (
	"os"
	"strconv"
	"testing"

	"github.com/ripcordhq/ripcord/core"
)

// BenchmarkAuditVerify measures what `ripcord audit verify` does on a
// signed log: read it in pages of 1000, check the chain, every entry's
// ed25519 signature and the head file, then compare each row's lookup
// columns with its entry. RIPCORD_BENCH_AUDIT_ENTRIES sets the log's
// length (default 10000).
func BenchmarkAuditVerify(b *testing.B) {
	n := 10_000
	if v := os.Getenv("RIPCORD_BENCH_AUDIT_ENTRIES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("RIPCORD_BENCH_AUDIT_ENTRIES=%q", v)
		}
	}
	ctx := testContext(b)
	s, path := openTemp(b)
	defer s.Close()
	e := core.AuditEntry{Actor: core.Actor{Name: "alice", Host: "bastion"}, Action: "promote",
		Ref: core.Ref{Service: "api", Env: "production"}, From: "v1.42.0", To: "v1.43.0", Outcome: "ok"}
	for range n {
		if _, err := s.AppendAudit(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
	pub, err := AuditPublicKey(path)
	if err != nil {
		b.Fatal(err)
	}
	head, found, err := ReadAuditHead(path)
	if err != nil || !found {
		b.Fatalf("head file: %v, found %v", err, found)
	}
	b.ResetTimer()
	for b.Loop() {
		check := core.NewAuditCheck(pub)
		check.Expect(head, "the head file")
		for after := int64(0); ; {
			page, err := s.Audit(ctx, after, 1000)
			if err != nil {
				b.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			if err := check.Add(page); err != nil {
				b.Fatal(err)
			}
			after = page[len(page)-1].Seq
		}
		if err := s.CheckAuditIndex(ctx); err != nil {
			b.Fatal(err)
		}
		if h, err := check.Finish(); err != nil || h.Count != int64(n) {
			b.Fatalf("verify: %+v, %v", h, err)
		}
	}
	b.ReportMetric(float64(n), "entries")
}
