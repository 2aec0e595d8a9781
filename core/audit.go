package core

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// GenesisHash is the PrevHash of the first audit entry.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// HashAudit computes an entry's hash over its content and PrevHash. Seq
// and Hash themselves are covered (Seq) or excluded (Hash), so reordering,
// editing or deleting an entry breaks the chain after it.
func HashAudit(e AuditEntry) string {
	e.Hash = ""
	e.At = e.At.UTC().Truncate(time.Microsecond)
	b, err := json.Marshal(e)
	if err != nil {
		// AuditEntry holds only plain data; Marshal cannot fail on it.
		panic(fmt.Sprintf("audit: marshal: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ChainError says where an audit chain breaks.
type ChainError struct {
	Seq    int64
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit chain broken at entry %d: %s", e.Seq, e.Reason)
}

// VerifyAudit checks a contiguous run of entries, oldest first. prevHash is
// the hash of the entry before the first one (GenesisHash from the start).
// It returns the last hash, to continue with the next page.
func VerifyAudit(prevHash string, entries []AuditEntry) (string, error) {
	for i, e := range entries {
		if i > 0 && e.Seq != entries[i-1].Seq+1 {
			return prevHash, &ChainError{Seq: e.Seq, Reason: fmt.Sprintf("entry %d is missing", entries[i-1].Seq+1)}
		}
		if e.PrevHash != prevHash {
			return prevHash, &ChainError{Seq: e.Seq, Reason: "it does not follow the entry before it (an entry was removed or reordered)"}
		}
		if h := HashAudit(e); h != e.Hash {
			return prevHash, &ChainError{Seq: e.Seq, Reason: "its content does not match its hash (the entry was edited)"}
		}
		prevHash = e.Hash
	}
	return prevHash, nil
}
