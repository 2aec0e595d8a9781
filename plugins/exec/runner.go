package exec

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// execute runs a run's stages in order from stage index from on. facts,
// when not nil, delivers what the run is built from; it is recorded first
// thing and, for the migrations, before the run can end green.
func (s *Source) execute(ctx context.Context, r *run, from int, facts <-chan sourceFacts) {
	defer close(r.done)
	var pending <-chan sourceFacts
	if facts != nil {
		f := <-facts // commit and branch: read before any step changes the tree
		s.update(r, func(info *core.PipelineRun) { info.Commit, info.Branch = f.commit, f.branch })
		pending = f.migrations
	}
	stopped := false // a failure or cancel skips everything after it
	for i := from; i < len(s.stages); i++ {
		sc := s.stages[i]
		if !stopped && !s.needsMet(r, sc) {
			s.update(r, func(info *core.PipelineRun) { skipStage(&info.Stages[i]) })
			continue
		}
		if stopped {
			s.update(r, func(info *core.PipelineRun) { skipStage(&info.Stages[i]) })
			continue
		}
		s.update(r, func(info *core.PipelineRun) { info.Stages[i].State = core.RunRunning })
		stageState := core.RunSucceeded
		for j, step := range sc.Steps {
			if stageState != core.RunSucceeded {
				s.update(r, func(info *core.PipelineRun) { info.Stages[i].Steps[j].State = core.RunSkipped })
				continue
			}
			state := s.runStep(ctx, r, i, j, sc, step)
			if state != core.RunSucceeded {
				stageState = state
			}
		}
		s.update(r, func(info *core.PipelineRun) { info.Stages[i].State = stageState })
		if stageState != core.RunSucceeded {
			stopped = true
		}
	}
	var mf sourceFacts
	if pending != nil {
		mf = <-pending
	}
	s.update(r, func(info *core.PipelineRun) {
		if pending != nil {
			info.Migrations, info.MigrationsUnknown = mf.list, mf.unknown
		}
		info.State = core.RunSucceeded
		for _, st := range info.Stages {
			switch st.State {
			case core.RunCanceled:
				info.State = core.RunCanceled
			case core.RunFailed:
				if info.State != core.RunCanceled {
					info.State = core.RunFailed
				}
			}
		}
		info.FinishedAt = time.Now().UTC()
	})
}

func (s *Source) needsMet(r *run, sc StageConfig) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range sc.Needs {
		for _, st := range r.info.Stages {
			if st.Name == n && st.State != core.RunSucceeded {
				return false
			}
		}
	}
	return true
}

func skipStage(st *core.Stage) {
	st.State = core.RunSkipped
	for k := range st.Steps {
		st.Steps[k].State = core.RunSkipped
	}
}

// runStep runs one command as its own process group and returns its state.
func (s *Source) runStep(ctx context.Context, r *run, i, j int, sc StageConfig, step StepConfig) core.RunState {
	key := sc.Name + "/" + step.Name
	log := r.logs[key]
	source := r.info.ID + "/" + key
	emit := func(stream, text string) {
		line := core.LogLine{Time: time.Now().UTC(), Source: source, Stream: stream, Text: text}
		log.add(line)
		if s.logf != nil {
			s.logfMu.Lock() // stdout and stderr are read concurrently
			s.logf(line)
			s.logfMu.Unlock()
		}
	}
	start := time.Now().UTC()
	s.update(r, func(info *core.PipelineRun) {
		sp := &info.Stages[i].Steps[j]
		sp.State, sp.StartedAt = core.RunRunning, start
	})
	state, code := s.runCommand(ctx, r, sc, step, emit)
	if state == core.RunSucceeded && step.Artifact != "" {
		digest, err := s.storeArtifact(step.Artifact)
		if err != nil {
			emit("ripcord", "artifact: "+err.Error())
			state = core.RunFailed
		} else {
			emit("ripcord", "artifact "+step.Artifact+" is "+digest)
			s.update(r, func(info *core.PipelineRun) { info.ArtifactDigest = digest })
		}
	}
	log.finish()
	s.update(r, func(info *core.PipelineRun) {
		sp := &info.Stages[i].Steps[j]
		sp.State, sp.ExitCode, sp.FinishedAt = state, code, time.Now().UTC()
	})
	return state
}

func (s *Source) runCommand(ctx context.Context, r *run, sc StageConfig, step StepConfig, emit func(stream, text string)) (core.RunState, int) {
	timeout := step.Timeout
	if timeout <= 0 {
		timeout = sc.Timeout
	}
	stepCtx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		stepCtx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cmd := osexec.Command("/bin/sh", "-c", step.Run)
	cmd.Dir = s.cfg.WorkDir
	cmd.Env = append(os.Environ(),
		"RIPCORD_SERVICE="+r.info.Service, "RIPCORD_VERSION="+r.info.Version, "RIPCORD_RUN_ID="+r.info.ID)
	for _, env := range []map[string]string{sc.Env, step.Env} {
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	outR, outW, err := os.Pipe()
	if err != nil {
		emit("ripcord", "cannot start: "+err.Error())
		return core.RunFailed, -1
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		emit("ripcord", "cannot start: "+err.Error())
		return core.RunFailed, -1
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		emit("ripcord", "cannot start: "+err.Error())
		return core.RunFailed, -1
	}
	pgid := cmd.Process.Pid
	var readers sync.WaitGroup
	for stream, rd := range map[string]*os.File{"stdout": outR, "stderr": errR} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			readLines(rd, func(text string) { emit(stream, text) })
		}()
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	var waitErr error
	ended := ""
	select {
	case waitErr = <-waited:
	case <-stepCtx.Done():
		if ctx.Err() != nil {
			ended = "canceled"
		} else {
			ended = fmt.Sprintf("timed out after %s", timeout)
		}
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case waitErr = <-waited:
		case <-time.After(s.cfg.Grace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			waitErr = <-waited
		}
	}
	// Whatever the step left running in its group ends with it; then the
	// pipes close and the readers finish.
	endGroup(pgid)
	readDone := make(chan struct{})
	go func() { readers.Wait(); close(readDone) }()
	select {
	case <-readDone:
	case <-time.After(2 * time.Second):
		// A process outside the group still holds the pipe: stop reading.
		outR.Close()
		errR.Close()
		<-readDone
	}
	outR.Close()
	errR.Close()

	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	switch {
	case ended == "canceled":
		emit("ripcord", "canceled")
		return core.RunCanceled, code
	case ended != "":
		emit("ripcord", ended)
		return core.RunFailed, code
	case waitErr != nil:
		return core.RunFailed, code
	}
	return core.RunSucceeded, code
}

// readLines calls fn for every line, cutting lines longer than maxLine
// (the rest of such a line is skipped, not buffered).
func readLines(r io.Reader, fn func(string)) {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			fn(string(line) + " …[line cut at " + strconv.Itoa(maxLine) + " bytes]")
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil {
				return
			}
			continue
		}
		if len(line) > 0 {
			fn(string(bytes.TrimRight(line, "\r\n")))
		}
		if err != nil {
			return
		}
	}
}

// endGroup kills what is left of a process group and reaps the members
// that were re-parented to this process, so that afterwards
// kill(-pgid, 0) fails with ESRCH. It needs this process to be a child
// subreaper (see New): otherwise orphans go to init, which on some
// machines never reaps them.
func endGroup(pgid int) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		for _, pid := range groupMembers(pgid) {
			var ws syscall.WaitStatus
			_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		}
		if syscall.Kill(-pgid, 0) == syscall.ESRCH || time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// groupMembers lists the processes of a group from /proc.
func groupMembers(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the parenthesised name: state ppid pgrp ...
		k := bytes.LastIndexByte(b, ')')
		if k < 0 {
			continue
		}
		f := strings.Fields(string(b[k+1:]))
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) {
			out = append(out, pid)
		}
	}
	return out
}

// storeArtifact hashes the file and copies it to the artifact store as
// <hex>, returning "sha256:<hex>".
func (s *Source) storeArtifact(path string) (string, error) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(s.cfg.WorkDir, path)
	}
	src, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	defer src.Close()
	store := filepath.Join(s.cfg.StateDir, "artifacts")
	tmp, err := os.CreateTemp(store, ".incoming-*")
	if err != nil {
		return "", fmt.Errorf("create in artifact store: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), src)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("copy %s to the artifact store: %w", path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(tmp.Name(), filepath.Join(store, sum)); err != nil {
		return "", fmt.Errorf("store artifact: %w", err)
	}
	return "sha256:" + sum, nil
}
