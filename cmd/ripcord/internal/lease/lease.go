// Package lease makes sure one server runs per state store, and tells
// clients where it is.
//
// Beside the state file (".ripcord/state.db") a server keeps:
//
//	state.db.server.lock  flock(2)ed for as long as the server runs
//	state.db.server.json  who holds it: pid, host, since, socket, log
//	state.db.sock         the client API's Unix socket
//	state.db.server.log   an autostarted server's output
//
// The kernel releases the flock when the process dies however it dies, so
// a crashed server never blocks the next one; the record is only read to
// name the holder and to find a socket that did not fit beside the state.
package lease

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// maxSocketPath is the longest socket path bind(2) takes: sun_path is 108
// bytes on Linux (104 on the BSDs) including the terminating NUL.
const maxSocketPath = 103

// Paths are the files of one state store's server.
type Paths struct {
	State  string // the state file the server owns
	Lock   string
	Record string
	Log    string
	// Socket is where a server started now listens: beside the state, or
	// under the runtime directory when that path is too long for a socket.
	Socket string
}

// For returns the paths of the server of the state file at state.
func For(state string) Paths {
	abs, err := filepath.Abs(state)
	if err == nil {
		state = abs
	}
	p := Paths{
		State: state, Lock: state + ".server.lock", Record: state + ".server.json",
		Log: state + ".server.log", Socket: state + ".sock",
	}
	if len(p.Socket) > maxSocketPath {
		p.Socket = shortSocket(state)
	}
	return p
}

// shortSocket is a socket path short enough for bind(2), named by a hash
// of the state path so every client computes the same one: under
// $XDG_RUNTIME_DIR (the user's own, 0700) or else a per-user directory in
// /tmp.
func shortSocket(state string) string {
	sum := sha256.Sum256([]byte(state))
	name := "ripcord-" + hex.EncodeToString(sum[:8]) + ".sock"
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" && len(dir)+len(name)+1 <= maxSocketPath {
		return filepath.Join(dir, name)
	}
	return filepath.Join(os.TempDir(), "ripcord-"+strconv.Itoa(os.Getuid()), name)
}

// Record says which server holds a state store.
type Record struct {
	Pid         int       `json:"pid"`
	Host        string    `json:"host"`
	Since       time.Time `json:"since"`
	Socket      string    `json:"socket"`
	Log         string    `json:"log,omitempty"`
	Version     string    `json:"version,omitempty"`
	Autostarted bool      `json:"autostarted,omitempty"`
}

func (r Record) String() string {
	return fmt.Sprintf("pid %d on %s since %s", r.Pid, r.Host, r.Since.Local().Format("2006-01-02 15:04:05 MST"))
}

// HeldError says a server already runs for the state store.
type HeldError struct {
	State string
	// Record is the running server's, when it could be read.
	Record *Record
}

func (e *HeldError) Error() string {
	if e.Record == nil {
		return fmt.Sprintf("a ripcord server already runs for %s (its record is unreadable); `ripcord server stop` stops it", e.State)
	}
	return fmt.Sprintf("a ripcord server already runs for %s: %s, socket %s; `ripcord server stop` stops it", e.State, e.Record, e.Record.Socket)
}

// Lease is held by the one server of a state store until Release.
type Lease struct {
	paths Paths
	lock  *os.File
}

// Acquire takes the state store's lease for the server described by rec,
// or returns *HeldError naming the server that has it. mode is the
// permission of the files it creates (0600, or 0660 for a group).
func Acquire(p Paths, rec Record, mode os.FileMode) (*Lease, error) {
	if err := os.MkdirAll(filepath.Dir(p.Lock), 0o755); err != nil {
		return nil, fmt.Errorf("creating the state directory: %w", err)
	}
	f, err := os.OpenFile(p.Lock, os.O_RDWR|os.O_CREATE, mode)
	if err != nil {
		return nil, fmt.Errorf("opening the server lock %s: %w", p.Lock, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			held := &HeldError{State: p.State}
			if r, rerr := ReadRecord(p); rerr == nil {
				held.Record = &r
			}
			return nil, held
		}
		return nil, fmt.Errorf("locking %s: %w", p.Lock, err)
	}
	l := &Lease{paths: p, lock: f}
	if err := writeAtomic(p.Record, rec, mode); err != nil {
		l.Release()
		return nil, err
	}
	return l, nil
}

// Release removes the record and gives the lease back.
func (l *Lease) Release() {
	_ = os.Remove(l.paths.Record)
	_ = unix.Flock(int(l.lock.Fd()), unix.LOCK_UN)
	_ = l.lock.Close()
}

// ReadRecord reads the record a server left. A record may outlive its
// server (kill -9): a live server is one that answers on the socket.
func ReadRecord(p Paths) (Record, error) {
	var r Record
	b, err := os.ReadFile(p.Record)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("reading %s: %w", p.Record, err)
	}
	return r, nil
}

// FindSocket is where clients find the server: the socket its record names,
// else where a server would listen.
func (p Paths) FindSocket() string {
	if r, err := ReadRecord(p); err == nil && r.Socket != "" {
		return r.Socket
	}
	return p.Socket
}

func writeAtomic(path string, v any, mode os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), mode); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
