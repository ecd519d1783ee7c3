package pods

// Seeds: a pod restored from a checkpoint instead of booted. A fork and a
// template snapshot are both a seed; the pod's own provisioning steps run
// as for a cold create, with the seed step copying the seed's writable
// layer and run directory in and the sandbox step restoring instead of
// creating. docs/snapshots.md.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/podspec"
	"github.com/pinacle/pinacle-node/snapshots"
)

// seed is what a pod restores from.
type seed struct {
	kind       string // seedFork or seedSnapshot
	key        string // the snapshot's key (seedSnapshot)
	checkpoint string // runsc's image
	upper      string // the writable layer to copy in
	run        string // the run directory to copy in (logs the processes hold open)
}

const (
	seedFork     = "fork"
	seedSnapshot = "snapshot"
	// forkSeedMark is written last into pods/<id>/seed/: a fork's seed
	// without it is unfinished and the pod starts cold.
	forkSeedMark = "seed.json"
)

func (m *Manager) forkSeedDir(id string) string { return filepath.Join(m.podDir(id), "seed") }

// findSeed picks the seed of a pod's first start: its own fork seed, or
// a template snapshot matching its spec. nil: a cold start.
func (m *Manager) findSeed(u *unit) *seed {
	if u.warm != nil {
		return nil // a claimed warm sandbox runs already: nothing to restore into
	}
	if u.noSeed || u.pinned != "" && !m.hasForkSeed(u.id) {
		return nil // a restart (or the cold retry of a failed restore)
	}
	if m.hasForkSeed(u.id) {
		d := m.forkSeedDir(u.id)
		return &seed{kind: seedFork, checkpoint: filepath.Join(d, snapshots.CheckpointDir),
			upper: filepath.Join(d, snapshots.UpperDir), run: filepath.Join(d, snapshots.RunDir)}
	}
	st := m.cfg.Snapshots
	if st == nil || u.spec.Template == "" || u.spec.GithubRepo != "" || u.img == nil {
		return nil
	}
	key := m.snapshotKey(u.spec, u.img.Image.Digest)
	if _, err := st.Get(key); err != nil {
		return nil
	}
	return &seed{kind: seedSnapshot, key: key, checkpoint: st.Path(key, snapshots.CheckpointDir),
		upper: st.Path(key, snapshots.UpperDir), run: st.Path(key, snapshots.RunDir)}
}

func (m *Manager) hasForkSeed(id string) bool {
	_, err := os.Stat(filepath.Join(m.forkSeedDir(id), forkSeedMark))
	return err == nil
}

// applySeed is the seed step: with a seed, the pod's fresh writable layer
// and run directory get the seed's contents (before anything looks at
// the merged rootfs, so the overlay has nothing cached).
func applySeed(ctx context.Context, u *unit) error {
	s := u.m.findSeed(u)
	if s == nil {
		return nil
	}
	if err := copyTree(ctx, s.upper, u.rfs.Upper); err != nil {
		return fmt.Errorf("writable layer: %w", err)
	}
	if err := copyTree(ctx, s.run, u.m.runDir(u.id)); err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	u.seed = s
	return nil
}

// copyTree copies the contents of src into dst with modes, owners, times,
// links, device nodes (overlay whiteouts) and xattrs (overlay opaque
// marks); a missing src copies nothing.
func copyTree(ctx context.Context, src, dst string) error {
	if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "cp", "-a", "--reflink=auto", "--", src+"/.", dst+"/").CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp %s: %w: %s", src, err, out)
	}
	return nil
}

// restoreSeed is the sandbox step of a seeded pod: runsc restores the
// seed's checkpoint into this pod's bundle (its rootfs, netns, cgroup,
// hostname). gVisor rebuilds its NICs from the netns at restore, so the
// processes come back on this pod's address (docs/snapshots.md).
func restoreSeed(ctx context.Context, u *unit, logf *os.File) error {
	err := u.m.cfg.Runtime.Restore(ctx, u.id, u.m.bundleDir(u.id), oci.RestoreOpts{
		ImagePath: u.seed.checkpoint, CreateOpts: oci.CreateOpts{Stdout: logf, Stderr: logf},
	})
	if err != nil {
		u.seedFailed = err
		return err
	}
	u.m.event(ctx, u.id, "progress", "Restored", "restored from "+u.seed.describe())
	return u.m.refreshSecrets(ctx, u)
}

func (s *seed) describe() string {
	if s.kind == seedSnapshot {
		return "template snapshot " + s.key
	}
	return "a fork checkpoint"
}

// refreshSecrets restarts the services that read a per-pod secret at
// start (the web terminal's token, code-server's and Jupyter's): the
// restored ones still hold their seed's, which this pod's config no
// longer has.
func (m *Manager) refreshSecrets(ctx context.Context, u *unit) error {
	for _, s := range u.spec.Services {
		if !readsSecret(s) {
			continue
		}
		code, err := m.cfg.Runtime.Exec(ctx, u.id, oci.ExecOpts{
			Args: []string{sandboxBin, "init", "svc", "restart", s.Name}, User: "0:0"})
		if err == nil && code != 0 {
			err = fmt.Errorf("exited %d", code)
		}
		if err != nil {
			return fmt.Errorf("restarting %s for its own token: %w", s.Name, err)
		}
	}
	return nil
}

// dropForkSeed removes a fork's seed once the pod runs: later starts
// are ordinary starts of its files.
func dropForkSeed(_ context.Context, u *unit) error {
	return os.RemoveAll(u.m.forkSeedDir(u.id))
}

// upSeeded runs the pod's steps; when a seeded restore failed it says so
// in an event and runs them again cold. A broken template snapshot is
// removed and the retry gets a fresh writable layer; a fork keeps its
// copied files (its processes start anew).
func (m *Manager) upSeeded(ctx context.Context, u *unit, t *timing, undone func(string, error)) error {
	err := podSteps.up(ctx, u, t, undone)
	if err == nil || u.seed == nil || u.seedFailed == nil {
		return err
	}
	s := u.seed
	u.seed, u.seedFailed, u.noSeed = nil, nil, true
	// The failed attempt's undo tore down its network and unmounted its
	// rootfs: the retry makes its own (the steps reuse ones already set,
	// which only a claimed warm sandbox's are).
	u.att, u.rfs = nil, nil
	if s.kind == seedSnapshot {
		m.event(ctx, u.id, "warning", "SnapshotFailed", fmt.Sprintf("restoring template snapshot %s: %v; removed it, creating cold", s.key, err))
		if rerr := m.cfg.Snapshots.Remove(s.key); rerr != nil {
			m.log.Warn("removing a broken snapshot", "key", s.key, "err", rerr)
		}
		if rerr := u.rootfs.Remove(ctx, u.dir); rerr != nil {
			return errors.Join(err, fmt.Errorf("clearing the restored writable layer: %w", rerr))
		}
		if rerr := os.RemoveAll(m.runDir(u.id)); rerr != nil {
			return errors.Join(err, rerr)
		}
		if rerr := os.MkdirAll(m.logDir(u.id), 0o755); rerr != nil {
			return errors.Join(err, rerr)
		}
	} else {
		m.event(ctx, u.id, "warning", "RestoreFailed", fmt.Sprintf("restoring the fork: %v; starting it afresh from the copied files", err))
		if rerr := dropForkSeed(ctx, u); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	return podSteps.up(ctx, u, &timing{}, undone)
}

// snapshotServes says whether a template snapshot would seed a create of
// spec, so that create does not claim a warm sandbox instead.
func (m *Manager) snapshotServes(ctx context.Context, spec *podspec.Pod) bool {
	st := m.cfg.Snapshots
	if st == nil || spec.Template == "" || spec.GithubRepo != "" {
		return false
	}
	img, err := m.cfg.Images.RootFS(ctx, spec.BaseImage)
	if err != nil {
		return false
	}
	_, err = st.Get(m.snapshotKey(spec, img.Image.Digest))
	return err == nil
}
