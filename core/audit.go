package core

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// GenesisHash is the PrevHash of the first audit entry.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// HashAudit computes an entry's hash over its content and PrevHash. Seq
// and Hash themselves are covered (Seq) or excluded (Hash), so reordering,
// editing or deleting an entry breaks the chain after it.
func HashAudit(e AuditEntry) string {
	e.Hash, e.Sig = "", ""
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

// AuditHead is where the log ends: how many entries it has and the last
// one's hash. It is kept outside the database too (a head file beside the
// state, every JSON export, and wherever a person copies it), so cutting
// entries off the end, or rewriting the log, shows against it.
type AuditHead struct {
	Count int64  `json:"count"`
	Hash  string `json:"hash"`
}

func (h AuditHead) String() string { return fmt.Sprintf("%d:%s", h.Count, h.Hash) }

// ParseAuditHead reads "COUNT:HASH".
func ParseAuditHead(s string) (AuditHead, error) {
	count, hash, ok := strings.Cut(strings.TrimSpace(s), ":")
	n, err := strconv.ParseInt(count, 10, 64)
	if !ok || err != nil || n < 0 {
		return AuditHead{}, fmt.Errorf("audit head %q: want COUNT:HASH, as `ripcord audit verify` prints it", s)
	}
	if _, err := hex.DecodeString(hash); err != nil || len(hash) != 64 {
		return AuditHead{}, fmt.Errorf("audit head %q: the hash is not 64 hex digits", s)
	}
	return AuditHead{Count: n, Hash: hash}, nil
}

// AuditKeyID names a public key in signatures: the first 8 bytes of its
// SHA-256, in hex.
func AuditKeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// auditSigned is what the key signs: the entry's hash, with a label so a
// signature cannot be replayed as anything else.
func auditSigned(hash string) []byte { return []byte("ripcord audit entry v1\n" + hash) }

// SignAudit signs an entry's hash (set Hash first).
func SignAudit(key ed25519.PrivateKey, e AuditEntry) string {
	pub := key.Public().(ed25519.PublicKey)
	return AuditKeyID(pub) + ":" + base64.StdEncoding.EncodeToString(ed25519.Sign(key, auditSigned(e.Hash)))
}

// checkSig reports why e's signature does not hold for pub, nil when it
// does.
func checkSig(pub ed25519.PublicKey, e AuditEntry) error {
	id, sig, ok := strings.Cut(e.Sig, ":")
	raw, err := base64.StdEncoding.DecodeString(sig)
	if !ok || err != nil {
		return errors.New("its signature is malformed")
	}
	if want := AuditKeyID(pub); id != want {
		return fmt.Errorf("it is signed by key %s, not by the audit key %s", id, want)
	}
	if !ed25519.Verify(pub, auditSigned(e.Hash), raw) {
		return errors.New("its signature does not match its content (the entry was changed and the chain recomputed after it)")
	}
	return nil
}

// AuditCheck verifies a log page by page: the chain, each signature (with
// a public key), and the heads it was given to expect.
type AuditCheck struct {
	pub   ed25519.PublicKey
	prev  string
	n     int64
	heads []expectedHead
	// Unsigned counts the entries from before signing began: entries
	// before the first signed one may be unsigned, none after it.
	Unsigned int64
	signed   bool
}

type expectedHead struct {
	AuditHead
	from string // where the head came from, for messages
	seen bool
}

// NewAuditCheck starts a check from the first entry; pub nil skips
// signatures.
func NewAuditCheck(pub ed25519.PublicKey) *AuditCheck {
	return &AuditCheck{pub: pub, prev: GenesisHash}
}

// Expect adds a head the log must reach and agree with; from says where
// it came from ("the head file", "--head").
func (c *AuditCheck) Expect(h AuditHead, from string) {
	c.heads = append(c.heads, expectedHead{AuditHead: h, from: from})
}

// Add checks the next entries, oldest first.
func (c *AuditCheck) Add(entries []AuditEntry) error {
	for _, e := range entries {
		if e.Seq != c.n+1 {
			return &ChainError{Seq: e.Seq, Reason: fmt.Sprintf("entry %d is missing", c.n+1)}
		}
		if _, err := VerifyAudit(c.prev, []AuditEntry{e}); err != nil {
			return err
		}
		if c.pub != nil {
			switch {
			case e.Sig == "" && c.signed:
				return &ChainError{Seq: e.Seq, Reason: "it is not signed, though entries before it are (its signature was removed)"}
			case e.Sig == "":
				c.Unsigned++
			default:
				if err := checkSig(c.pub, e); err != nil {
					return &ChainError{Seq: e.Seq, Reason: err.Error()}
				}
				c.signed = true
			}
		}
		for i := range c.heads {
			h := &c.heads[i]
			if h.Count == e.Seq {
				h.seen = true
				if h.Hash != e.Hash {
					return &ChainError{Seq: e.Seq, Reason: fmt.Sprintf("it is not the entry %s recorded (hash %s…, the head says %s…): the log was rewritten up to here", h.from, shortHash(e.Hash), shortHash(h.Hash))}
				}
			}
		}
		c.prev, c.n = e.Hash, e.Seq
	}
	return nil
}

// Finish checks the log reached every head it was given, and returns its
// own head.
func (c *AuditCheck) Finish() (AuditHead, error) {
	for _, h := range c.heads {
		if h.Count > c.n {
			return c.Head(), &ChainError{Seq: c.n + 1, Reason: fmt.Sprintf("the log ends at entry %d, but %s says %d entries (ending in %s…): entries %d–%d were removed", c.n, h.from, h.Count, shortHash(h.Hash), c.n+1, h.Count)}
		}
		if h.Count == 0 && h.Hash != GenesisHash && h.Hash != "" {
			return c.Head(), fmt.Errorf("%s names no entries but a hash", h.from)
		}
	}
	return c.Head(), nil
}

// Head is the head of what was checked so far.
func (c *AuditCheck) Head() AuditHead {
	if c.n == 0 {
		return AuditHead{Hash: GenesisHash}
	}
	return AuditHead{Count: c.n, Hash: c.prev}
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
