package pods

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/portfwd"
)

// hibernateSteps take a running pod's sandbox to a checkpoint on disk
// and free it; the pod keeps its network (address and netns), its
// rootfs mount, its host ports and its files. A failure undoes what
// completed and leaves the pod running. Each step is a crash point
// (hibernate:NAME); Recover settles a pod found hibernating.
//
// A function, not a variable: its steps reach, through the watcher's
// restart, back to the operations that run it.
func hibernateSteps() steps[*unit] {
	return steps[*unit]{crash: true, verb: "hibernate", list: []step[*unit]{
		{name: "sessions", do: closeSessions},
		// The kernel's DNAT rules step aside and open connections close: new
		// ones reach the listener and wait, to wake the pod once it sleeps.
		// Before the sync, so that a connection arriving during it waits
		// instead of being served half way and cut here.
		{name: "ports", do: portsHibernated, undo: portsRunning},
		// gVisor caches file writes; flushed, they survive a failed restore.
		{name: "sync", do: syncFiles},
		// The sandbox exits after the checkpoint: not a death.
		{name: "watch", do: unwatchSandbox, undo: watchSandbox},
		{name: "checkpoint", do: checkpointSandbox, undo: discardCheckpoint, partial: true},
		{name: "sandbox", do: removeCheckpointed},
	}}
}

// sessionClose bounds how long a hibernate waits for exec sessions to end.
const sessionClose = 5 * time.Second

func closeSessions(ctx context.Context, u *unit) error {
	ctx, cancel := context.WithTimeout(ctx, sessionClose)
	defer cancel()
	if n := u.m.execs.closeAll(ctx, u.id); n > 0 {
		u.m.event(ctx, u.id, "hibernate", "SessionsClosed", fmt.Sprintf("closed %d exec session(s) before the checkpoint", n))
	}
	return nil
}

// syncTimeout bounds the flush of the sandbox's file writes.
const syncTimeout = 30 * time.Second

// syncFiles runs `init sync` in the sandbox. A failure is an event: the
// checkpoint still holds the writes; only a cold start would miss them.
func syncFiles(ctx context.Context, u *unit) error {
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	code, err := u.m.cfg.Runtime.Exec(ctx, u.id, oci.ExecOpts{Args: []string{sandboxBin, "init", "sync"}, User: "0:0"})
	if err == nil && code != 0 {
		err = fmt.Errorf("exited %d", code)
	}
	if err != nil {
		u.m.event(ctx, u.id, "warning", "SyncFailed", "flushing file writes before the checkpoint: "+err.Error())
	}
	return nil
}

func portsHibernated(_ context.Context, u *unit) error {
	if u.stillIdle != nil {
		// The sweep's last look came before this step: a connection
		// since then calls the hibernate off and is served, untouched
		// (portfwd.ErrActive).
		return u.m.cfg.Ports.SetStateIf(u.id, portfwd.Hibernated, u.stillIdle)
	}
	return u.m.cfg.Ports.SetState(u.id, portfwd.Hibernated)
}

func portsRunning(_ context.Context, u *unit) error {
	return u.m.cfg.Ports.SetState(u.id, portfwd.Running)
}

func unwatchSandbox(_ context.Context, u *unit) error { u.m.unwatch(u.id); return nil }
func watchSandbox(_ context.Context, u *unit) error   { u.m.watch(u.id); return nil }

// checkpointFacts is what a complete checkpoint records beside its image
// (checkpoint.json); without it the image is unfinished and not used.
type checkpointFacts struct {
	Bytes int64         `json:"bytes"`
	Took  time.Duration `json:"took"`
	At    time.Time     `json:"at"`
}

func (m *Manager) checkpointDir(id string) string { return filepath.Join(m.podDir(id), "checkpoint") }
func (m *Manager) checkpointMark(id string) string {
	return filepath.Join(m.podDir(id), "checkpoint.json")
}

// checkpointed returns the facts of pod id's complete checkpoint, or nil.
func (m *Manager) checkpointed(id string) *checkpointFacts {
	b, err := os.ReadFile(m.checkpointMark(id))
	if err != nil {
		return nil
	}
	var f checkpointFacts
	if json.Unmarshal(b, &f) != nil {
		return nil
	}
	return &f
}

// checkpointSandbox writes the sandbox's checkpoint (processes, memory,
// sockets) into the pod's directory; runsc stops the sandbox after it.
// The mark is written last, so a crash before it leaves no usable image.
func checkpointSandbox(ctx context.Context, u *unit) error {
	m, id := u.m, u.id
	if err := discardCheckpoint(ctx, u); err != nil {
		return err
	}
	dir := m.checkpointDir(id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	t0 := time.Now()
	if err := m.cfg.Runtime.Checkpoint(ctx, id, oci.CheckpointOpts{ImagePath: dir}); err != nil {
		return err
	}
	f := checkpointFacts{Bytes: dirBytes(dir), Took: time.Since(t0), At: time.Now().UTC()}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return writeFileSync(m.checkpointMark(id), b)
}

// discardCheckpoint removes the pod's checkpoint, mark first; none is
// success.
func discardCheckpoint(_ context.Context, u *unit) error {
	if err := os.Remove(u.m.checkpointMark(u.id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.RemoveAll(u.m.checkpointDir(u.id))
}

// removeCheckpointed deletes the stopped sandbox, which returns its
// memory cgroup to the host. A failure is an event, not a failed
// hibernate: the checkpoint is complete, and wake removes a leftover
// sandbox before it restores.
func removeCheckpointed(ctx context.Context, u *unit) error {
	if err := u.m.deleteSandbox(ctx, u.id); err != nil {
		u.m.event(ctx, u.id, "warning", "CleanupFailed", "removing the checkpointed sandbox: "+err.Error())
	}
	return nil
}

// Hibernate implements api.Service.
func (m *Manager) Hibernate(ctx context.Context, idOrName string) (*api.Pod, error) {
	return m.runVerb(ctx, idOrName, m.hibernate)
}

// hibernate runs hibernateSteps on a running pod (under its lock). On
// failure the pod is running again, and the error says why.
func (m *Manager) hibernate(ctx context.Context, id string) error {
	return m.hibernateIf(ctx, id, nil)
}

// hibernateIf is hibernate, called off (portfwd.ErrActive, the pod
// running) if stillIdle, when set, says no as the ports step aside.
func (m *Manager) hibernateIf(ctx context.Context, id string, stillIdle func(portfwd.PodStats) bool) error {
	dec, p, err := m.cfg.Store.ApplyOp(ctx, id, lifecycle.OpHibernate, "")
	if err != nil {
		return err
	}
	switch dec.Action {
	case lifecycle.NoOp:
		return nil
	case lifecycle.Await:
		return fmt.Errorf("pod %s is %s: %w", id, p.State, errdefs.ErrConflict)
	}
	u := m.unitFor(id)
	u.stillIdle = stillIdle
	st := m.statusOf(ctx, p)
	u.st = &st
	t := &timing{}
	err = hibernateSteps().up(ctx, u, t, func(step string, err error) {
		m.log.Warn("undo "+step, "pod", id, "err", err)
	})
	if err != nil {
		if errors.Is(err, portfwd.ErrActive) {
			m.event(ctx, id, "idle", "IdleHibernateCalledOff", "a connection came as the hibernate began; the pod keeps running")
		} else {
			m.event(ctx, id, "warning", "HibernateFailed", err.Error()+"; the pod keeps running")
		}
		if _, terr := m.cfg.Store.Transition(context.WithoutCancel(ctx), id, lifecycle.Running, ""); terr != nil {
			return m.fail(ctx, id, errors.Join(err, terr))
		}
		return fmt.Errorf("pod %s: hibernate: %w", id, err)
	}
	if _, err := m.cfg.Store.Transition(ctx, id, lifecycle.Hibernated, ""); err != nil {
		return err
	}
	msg := "hibernated"
	if f := m.checkpointed(id); f != nil {
		msg = fmt.Sprintf("hibernated: checkpoint of %.1f MiB in %s", float64(f.Bytes)/(1<<20), f.Took.Round(time.Millisecond))
	}
	m.log.Info("pod hibernated", append([]any{"pod", id}, t.kv...)...)
	m.event(ctx, id, "hibernate", "Hibernated", msg)
	return nil
}

// dirBytes is the size of the files below dir.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// writeFileSync writes b to path through a synced temporary file and a
// rename, so path is whole or absent after a crash.
func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
