package sqlitestore

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ripcordhq/ripcord/core"
)

// The audit log's tamper evidence outside the database: beside the state
// file sit its signing key (made with the first entry, 0600) and its head
// file (count and last hash, rewritten after every entry). Deleting rows
// from the database, or rewriting it with recomputed hashes, does not
// reach either in the same step.

// AuditKeyPath and AuditHeadPath name the files beside a state file.
func AuditKeyPath(statePath string) string  { return statePath + ".audit-key" }
func AuditHeadPath(statePath string) string { return statePath + ".audit-head" }

// auditKey returns the signing key, making it the first time.
func (s *Store) auditKey() (ed25519.PrivateKey, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.key != nil {
		return s.key, nil
	}
	key, err := readAuditKey(AuditKeyPath(s.path))
	if errors.Is(err, fs.ErrNotExist) {
		key, err = makeAuditKey(AuditKeyPath(s.path))
	}
	if err != nil {
		return nil, err
	}
	s.key = key
	return key, nil
}

func readAuditKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("audit key %s: not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit key %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("audit key %s: not an ed25519 key", path)
	}
	return key, nil
}

// makeAuditKey writes a new key, private to its owner. Two processes
// making one at once both link their file into place with no overwrite:
// the loser reads the winner's.
func makeAuditKey(path string) (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("make audit key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("make audit key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".audit-key-*")
	if err != nil {
		return nil, fmt.Errorf("make audit key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("make audit key: %w", err)
	}
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("make audit key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("make audit key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("make audit key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return readAuditKey(path)
	} else if err != nil {
		return nil, fmt.Errorf("make audit key: %w", err)
	}
	return key, nil
}

// AuditPublicKey is the public half of a state file's audit key; an
// error wrapping fs.ErrNotExist means no entry has been written yet.
func AuditPublicKey(statePath string) (ed25519.PublicKey, error) {
	abs, err := filepath.Abs(statePath)
	if err != nil {
		return nil, err
	}
	key, err := readAuditKey(AuditKeyPath(abs))
	if err != nil {
		return nil, err
	}
	return key.Public().(ed25519.PublicKey), nil
}

// writeHead records the log's head beside the state, never moving it
// back: two processes appending at once may finish in either order.
func (s *Store) writeHead(h core.AuditHead) error {
	f, err := os.OpenFile(AuditHeadPath(s.path), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	b := make([]byte, 256)
	n, _ := f.ReadAt(b, 0)
	if cur, err := core.ParseAuditHead(string(b[:n])); err == nil && cur.Count >= h.Count {
		return nil
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	// Not synced: after a power cut the head may lag the log by the last
	// entries, which verify reports as such; it can never run ahead.
	_, err = f.WriteAt([]byte(h.String()+"\n"), 0)
	return err
}

// ReadAuditHead reads the head file beside a state file; found is false
// when there is none (no entry written yet, or it was removed).
func ReadAuditHead(statePath string) (head core.AuditHead, found bool, err error) {
	abs, err := filepath.Abs(statePath)
	if err != nil {
		return core.AuditHead{}, false, err
	}
	b, err := os.ReadFile(AuditHeadPath(abs))
	if errors.Is(err, fs.ErrNotExist) {
		return core.AuditHead{}, false, nil
	}
	if err != nil {
		return core.AuditHead{}, false, err
	}
	h, err := core.ParseAuditHead(string(b))
	if err != nil {
		return core.AuditHead{}, true, fmt.Errorf("%s: %w", AuditHeadPath(abs), err)
	}
	return h, true, nil
}

// CheckAuditIndex compares the columns the audit table keeps for lookups
// with the entry each row stores: an edit to a column alone (who did
// what, where) shows as its entry and column.
func (s *Store) CheckAuditIndex(ctx context.Context) error {
	rows, err := s.r.QueryContext(ctx, `SELECT seq, at, action, service, env, actor, prev_hash, hash, entry FROM audit ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("read audit index: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			seq, at                                        int64
			action, service, env, actor, prev, hash, entry string
			e                                              core.AuditEntry
		)
		if err := rows.Scan(&seq, &at, &action, &service, &env, &actor, &prev, &hash, &entry); err != nil {
			return fmt.Errorf("read audit index: %w", err)
		}
		if err := json.Unmarshal([]byte(entry), &e); err != nil {
			return &core.ChainError{Seq: seq, Reason: "its stored entry is not readable: " + err.Error()}
		}
		var diff []string
		for _, c := range []struct{ col, got, want string }{
			{"seq", fmt.Sprint(seq), fmt.Sprint(e.Seq)},
			{"at", fmt.Sprint(at), fmt.Sprint(e.At.UnixMicro())},
			{"action", action, e.Action},
			{"service", service, e.Ref.Service},
			{"env", env, e.Ref.Env},
			{"actor", actor, e.Actor.Name},
			{"prev_hash", prev, e.PrevHash},
			{"hash", hash, e.Hash},
		} {
			if c.got != c.want {
				diff = append(diff, fmt.Sprintf("%s column says %q, the entry %q", c.col, c.got, c.want))
			}
		}
		if len(diff) > 0 {
			return &core.ChainError{Seq: seq, Reason: "its index columns were edited (" + strings.Join(diff, "; ") + ")"}
		}
	}
	return rows.Err()
}
