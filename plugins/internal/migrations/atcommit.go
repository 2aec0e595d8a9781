package migrations

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/internal/gitfacts"
)

// AtCommit reads a service's migrations directory, in a local clone of its
// repository, as it stands at the commits a CI service reports: the CI
// builds elsewhere, and the clone is where the config (and migrations.dir)
// lives. What a commit holds never changes, so each is read once; a commit
// the clone lacks is asked again after a while, in case it was fetched.
type AtCommit struct {
	// Dir is the migrations directory; "" reads nothing.
	Dir string

	mu    sync.Mutex
	read  map[string][]core.Migration
	asked map[string]time.Time // commits the clone lacked, and when
}

// retryMissing is how long a commit the clone lacked is not asked again.
const retryMissing = 30 * time.Second

// readTimeout bounds the git and parser work for one commit.
const readTimeout = time.Minute

// Read returns the migrations at commit, or why they are unknown. With no
// Dir it returns neither: nothing is to be read.
func (a *AtCommit) Read(commit string) (list []core.Migration, unknown string) {
	if a == nil || a.Dir == "" {
		return nil, ""
	}
	if commit == "" {
		return nil, "the CI service names no commit for this run, so its migrations cannot be read"
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if l, ok := a.read[commit]; ok {
		return l, ""
	}
	missing := fmt.Sprintf("commit %s is not in the repository at %s: fetch it there (git fetch) and the migrations are read", gitfacts.Short(commit), a.Dir)
	if at, ok := a.asked[commit]; ok && time.Since(at) < retryMissing {
		return nil, missing
	}
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	if !gitfacts.HasCommit(ctx, a.Dir, commit) {
		if a.asked == nil {
			a.asked = map[string]time.Time{}
		}
		a.asked[commit] = time.Now()
		return nil, missing
	}
	list, err := ReadAt(ctx, a.Dir, a.Dir, commit)
	if err != nil {
		return nil, err.Error()
	}
	if a.read == nil {
		a.read = map[string][]core.Migration{}
	}
	a.read[commit] = list
	delete(a.asked, commit)
	return list, ""
}

// ReadAt classes the migrations in dir as they stand at commit in the git
// repository worktree belongs to.
func ReadAt(ctx context.Context, worktree, dir, commit string) ([]core.Migration, error) {
	files, err := gitfacts.FilesAt(ctx, worktree, commit, dir)
	if err != nil {
		return nil, err
	}
	in := make([]File, len(files))
	for i, f := range files {
		in[i] = File{Path: f.Path, Data: f.Data}
	}
	return Read(in), nil
}
