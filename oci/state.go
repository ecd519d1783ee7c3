package oci

// The runsc driver: state, list, kill, wait and delete.

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func (r *runsc) State(ctx context.Context, id string) (State, error) {
	out, _, err := r.run(ctx, call{args: []string{"state", id}, capture: true})
	if err != nil {
		return State{}, fmt.Errorf("state %s: %w", id, err)
	}
	var st State
	if err := json.Unmarshal(out, &st); err != nil {
		return State{}, fmt.Errorf("state %s: decode %q: %w", id, tail(out, 200), err)
	}
	return st, nil
}

func (r *runsc) List(ctx context.Context) ([]State, error) {
	out, _, err := r.run(ctx, call{args: []string{"list", "-format=json"}, capture: true})
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	var sts []State
	if err := json.Unmarshal(out, &sts); err != nil {
		return nil, fmt.Errorf("list: decode %q: %w", tail(out, 200), err)
	}
	return sts, nil
}

func (r *runsc) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	args = append(args, id, strconv.Itoa(int(sig)))
	if _, _, err := r.run(ctx, call{id: id, args: args}); err != nil {
		return fmt.Errorf("kill %s: %w", id, err)
	}
	return nil
}

// lookup returns what we know of the container (cgroup, sandbox pid),
// filled from its bundle when this process did not create it, and its state.
func (r *runsc) lookup(ctx context.Context, id string) (*ctrInfo, State, error) {
	st, err := r.State(ctx, id)
	if err != nil {
		return nil, st, err
	}
	ci := r.info(id)
	ci.mu.Lock()
	if ci.cgroupsPath == "" && st.Bundle != "" {
		if s, err := ReadSpec(st.Bundle); err == nil && s.Linux != nil {
			ci.cgroupsPath = s.Linux.CgroupsPath
		}
	}
	if ci.pid <= 0 && st.Pid > 0 {
		ci.pid = st.Pid
		ci.pids = append(ci.pids, st.Pid)
	}
	ci.mu.Unlock()
	return ci, st, nil
}

// Wait learns the exit status from the sandbox process itself when it is
// our child (see BecomeSubreaper): runsc exits with the init's status, and
// that also covers a sandbox killed by the memcg OOM killer, which `runsc
// wait` cannot report. A sandbox adopted after a restart is not our child:
// Wait watches its pidfd and reports the exit with ExitInfo.Unknown. It
// used to run `runsc wait`, one resident runsc process per adopted pod for
// as long as the pod lived; that remains the fallback where pidfds are
// missing.
func (r *runsc) Wait(ctx context.Context, id string) (ExitInfo, error) {
	ci, _, err := r.lookup(ctx, id)
	if err != nil {
		return ExitInfo{}, fmt.Errorf("wait %s: %w", id, err)
	}
	ci.mu.Lock()
	if ci.exit != nil {
		e := *ci.exit
		ci.mu.Unlock()
		return e, nil
	}
	pid, cg := ci.pid, ci.cgroupsPath
	ci.mu.Unlock()

	var info ExitInfo
	ws, ok, err := theReaper.waitPid(ctx, pid)
	if err != nil {
		return ExitInfo{}, fmt.Errorf("wait %s: %w", id, err)
	}
	if ok {
		if ws.Signaled() {
			info = ExitInfo{Code: 128 + int(ws.Signal()), Signal: ws.Signal()}
		} else {
			info = ExitInfo{Code: ws.ExitStatus()}
		}
		// runsc exits with 128+n when the init died from signal n (it
		// cannot re-raise it), so the sandbox's own status reads as such.
		if info.Signal == 0 && info.Code > 128 && info.Code <= 128+64 {
			info.Signal = syscall.Signal(info.Code - 128)
		}
	} else if foreign, err := waitForeign(ctx, pid); foreign {
		if err != nil {
			return ExitInfo{}, fmt.Errorf("wait %s: %w", id, err)
		}
		info = ExitInfo{Code: -1, Unknown: true}
	} else {
		out, _, err := r.run(ctx, call{id: id, args: []string{"wait", id}, capture: true, unbounded: true})
		if err != nil {
			return ExitInfo{}, fmt.Errorf("wait %s: %w", id, err)
		}
		var res struct {
			ExitStatus int `json:"exitStatus"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			return ExitInfo{}, fmt.Errorf("wait %s: decode %q: %w", id, tail(out, 200), err)
		}
		info.Code = res.ExitStatus
		if info.Code > 128 && info.Code < 128+65 {
			info.Signal = syscall.Signal(info.Code - 128)
		}
	}
	// The cgroup outlives the sandbox until Delete: read the OOM evidence now.
	if ev := readMemoryEvents(cg); ev.ok && ev.oomKills > 0 {
		info.OOMKilled = true
	}
	ci.mu.Lock()
	ci.exit = &info
	ci.mu.Unlock()
	return info, nil
}

// known reports whether runsc keeps state for id under its root. The
// pinned runsc writes "<id>_sandbox:<sandbox-id>.state" (and a .lock) per
// container; TestKillDeleteList checks that layout. A readdir is far
// cheaper than asking runsc, which starts a large binary to answer even
// "no such container" (docs/runtime.md has the figure).
//
// Only the state file counts: runsc takes the lock file before it starts
// the gofer and the sandbox and writes the state after, so a runsc killed
// in between leaves a lock file, a sandbox and a gofer, and no runsc
// command can load the container (the chaos test found a pod failed with
// that gofer alive until its delete).
func (r *runsc) known(id string) bool {
	m, err := filepath.Glob(filepath.Join(r.root, globEscape(id)+"_sandbox:*.state"))
	return err != nil || len(m) > 0 // on doubt, ask runsc
}

func globEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`).Replace(s)
}

func (r *runsc) Delete(ctx context.Context, id string, force bool) error {
	if err := errdefs.ValidateID("container", id); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if !r.known(id) {
		// The common case before every create (clearing a leftover of an
		// interrupted start): nothing there, and no runsc exec to learn it.
		r.containers.Delete(id)
		return fmt.Errorf("delete %s: container not found: %w", id, errdefs.ErrNotFound)
	}
	ci, st, err := r.lookup(ctx, id)
	if err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	ci.mu.Lock()
	exited := ci.exit != nil
	pids, cg := ci.pids, ci.cgroupsPath
	ci.mu.Unlock()
	args := []string{"delete"}
	// A container whose init we saw exit may still read "running" in
	// runsc's metadata; forcing is safe then.
	if force || exited || st.Status == StatusStopped {
		args = append(args, "--force")
	}
	args = append(args, id)
	if _, _, err := r.run(ctx, call{id: id, args: args}); err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	r.containers.Delete(id)
	// Reap the sandbox, its gofer and exec helpers: no zombie is left.
	theReaper.reapAll(pids, 5*time.Second)
	theReaper.forget(pids)
	if err := RemoveCgroup(cg); err != nil {
		return fmt.Errorf("delete %s: cgroup %s: %w", id, cg, err)
	}
	return nil
}
