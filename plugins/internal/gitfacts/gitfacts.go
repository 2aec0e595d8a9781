// Package gitfacts reads what a build is made of from the git working
// tree it runs in: the commit, the branch (never guessed: a detached HEAD
// is resolved through the CI's own variables or the branches that contain
// the commit, else reported unknown with the reason), and files as they
// stand at a commit rather than in the working tree.
package gitfacts

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Facts are a working tree's commit and branch.
type Facts struct {
	Commit string
	// Branch is "" when it cannot be told; How says how it was found, or
	// why not.
	Branch string
	How    string
	// Dirty is set when tracked files differ from Commit: the build is not
	// exactly that commit.
	Dirty bool
}

// git runs git in dir and returns its trimmed standard output.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = err.Error()
		}
		return "", fmt.Errorf("git %s: %s", strings.Join(args, " "), msg)
	}
	return strings.TrimSpace(out.String()), nil
}

// Read reads the commit and branch of the working tree at dir. getenv
// reads the CI's variables (os.Getenv in a real run).
func Read(ctx context.Context, dir string, getenv func(string) string) (Facts, error) {
	commit, err := git(ctx, dir, "rev-parse", "--verify", "HEAD^{commit}")
	if err != nil {
		return Facts{}, fmt.Errorf("reading the commit of %s: %w", dir, err)
	}
	f := Facts{Commit: commit}
	if st, err := git(ctx, dir, "status", "--porcelain", "--untracked-files=no"); err == nil && st != "" {
		f.Dirty = true
	}
	if b, err := git(ctx, dir, "symbolic-ref", "-q", "--short", "HEAD"); err == nil && b != "" {
		f.Branch, f.How = b, "checked out"
		return f, nil
	}
	if b, how := ciBranch(commit, getenv); b != "" {
		f.Branch, f.How = b, how
		return f, nil
	}
	f.Branch, f.How = containing(ctx, dir, commit)
	return f, nil
}

// ciBranch reads the branch a CI system says it built, when the commit it
// names is the one checked out (a CI checks out a detached HEAD).
func ciBranch(commit string, getenv func(string) string) (string, string) {
	if getenv == nil {
		return "", ""
	}
	if sha := getenv("GITHUB_SHA"); sha != "" && sha == commit {
		if b := getenv("GITHUB_HEAD_REF"); b != "" { // a pull request's source branch
			return b, "GITHUB_HEAD_REF (pull request)"
		}
		if getenv("GITHUB_REF_TYPE") == "branch" && getenv("GITHUB_REF_NAME") != "" {
			return getenv("GITHUB_REF_NAME"), "GITHUB_REF_NAME"
		}
	}
	if sha := getenv("CI_COMMIT_SHA"); sha != "" && sha == commit {
		if b := getenv("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"); b != "" {
			return b, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME (merge request)"
		}
		if b := getenv("CI_COMMIT_BRANCH"); b != "" {
			return b, "CI_COMMIT_BRANCH"
		}
	}
	return "", ""
}

// containing names the branch that contains a detached commit: the
// default branch when it does (the commit is merged there), else the only
// branch that does; otherwise none, with the reason.
func containing(ctx context.Context, dir, commit string) (string, string) {
	out, err := git(ctx, dir, "for-each-ref", "--contains", commit, "--format=%(refname)", "refs/heads", "refs/remotes")
	if err != nil {
		return "", "detached HEAD, and the branches containing it could not be listed: " + err.Error()
	}
	var names []string
	for _, ref := range strings.Fields(out) {
		name, ok := strings.CutPrefix(ref, "refs/heads/")
		if !ok {
			rest := strings.TrimPrefix(ref, "refs/remotes/")
			_, name, _ = strings.Cut(rest, "/") // drop the remote
		}
		if name != "" && name != "HEAD" && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	sc := Short(commit)
	switch {
	case len(names) == 0:
		return "", "detached HEAD at " + sc + ", which no branch contains"
	case len(names) == 1:
		return names[0], "detached HEAD at " + sc + ", contained only in " + names[0]
	}
	if def := defaultBranch(ctx, dir); def != "" && slices.Contains(names, def) {
		return def, "detached HEAD at " + sc + ", merged into the default branch " + def
	}
	slices.Sort(names)
	return "", "detached HEAD at " + sc + ", contained in several branches (" + strings.Join(names, ", ") + ") and not in the default branch"
}

// defaultBranch is the remote's default branch (origin/HEAD), else main
// or master where one exists locally.
func defaultBranch(ctx context.Context, dir string) string {
	if ref, err := git(ctx, dir, "symbolic-ref", "-q", "--short", "refs/remotes/origin/HEAD"); err == nil && ref != "" {
		_, name, _ := strings.Cut(ref, "/")
		return name
	}
	for _, b := range []string{"main", "master"} {
		if _, err := git(ctx, dir, "rev-parse", "-q", "--verify", "refs/heads/"+b); err == nil {
			return b
		}
	}
	return ""
}

// Short is a commit's first 12 characters, as people quote it.
func Short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

// File is one file as it stands at a commit.
type File struct {
	Path string // relative to the repository's top
	Data []byte
}

// FilesAt returns the files directly inside dir (a directory of the
// working tree at worktree) as they stand at commit, not as they are on
// disk. A directory that does not exist at that commit has no files.
func FilesAt(ctx context.Context, worktree, commit, dir string) ([]File, error) {
	top, err := git(ctx, worktree, "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, fmt.Errorf("finding the repository of %s: %w", worktree, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	if real, err := filepath.EvalSymlinks(top); err == nil {
		top = real
	}
	rel, err := filepath.Rel(top, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return nil, fmt.Errorf("%s is outside the git repository %s", dir, top)
	}
	prefix := filepath.ToSlash(rel) + "/"
	if rel == "." {
		prefix = ""
	}
	list, err := git(ctx, top, "ls-tree", "-z", "--full-tree", commit, "--", prefix)
	if err != nil {
		return nil, fmt.Errorf("listing %s at %s: %w", prefix, Short(commit), err)
	}
	type blob struct{ sha, path string }
	var blobs []blob
	for _, entry := range strings.Split(list, "\x00") {
		meta, path, ok := strings.Cut(entry, "\t")
		if !ok {
			continue
		}
		f := strings.Fields(meta) // mode type sha
		if len(f) == 3 && f[1] == "blob" {
			blobs = append(blobs, blob{f[2], path})
		}
	}
	if len(blobs) == 0 {
		return nil, nil
	}
	// One cat-file process reads them all.
	cmd := exec.CommandContext(ctx, "git", "cat-file", "--batch")
	cmd.Dir = top
	var in bytes.Buffer
	for _, b := range blobs {
		in.WriteString(b.sha + "\n")
	}
	cmd.Stdin = &in
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("git cat-file: %w", err)
	}
	r := bufio.NewReader(out)
	files := make([]File, 0, len(blobs))
	for _, b := range blobs {
		head, err := r.ReadString('\n')
		if err != nil {
			_ = cmd.Wait()
			return nil, fmt.Errorf("reading %s at %s: %w", b.path, Short(commit), err)
		}
		f := strings.Fields(head) // sha type size
		if len(f) != 3 {
			_ = cmd.Wait()
			return nil, fmt.Errorf("reading %s at %s: git cat-file said %q", b.path, Short(commit), strings.TrimSpace(head))
		}
		size, err := strconv.Atoi(f[2])
		if err != nil {
			_ = cmd.Wait()
			return nil, fmt.Errorf("reading %s: bad size %q", b.path, f[2])
		}
		data := make([]byte, size+1) // content and its trailing newline
		if _, err := io.ReadFull(r, data); err != nil {
			_ = cmd.Wait()
			return nil, fmt.Errorf("reading %s at %s: %w", b.path, Short(commit), err)
		}
		files = append(files, File{Path: b.path, Data: data[:size]})
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("git cat-file: %w", err)
	}
	return files, nil
}

// HasCommit reports whether the repository at dir holds commit: a CI
// service reports commits that a local clone has not fetched yet.
func HasCommit(ctx context.Context, dir, commit string) bool {
	_, err := git(ctx, dir, "cat-file", "-e", commit+"^{commit}")
	return err == nil
}
