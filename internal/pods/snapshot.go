package pods

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/podspec"
	"github.com/pinacle/pinacle-node/snapshots"
	"github.com/pinacle/pinacle-node/supervisor"
)

// capture is a running pod being copied into a seed (a fork's or a
// template snapshot's) while it keeps running.
type capture struct {
	*unit
	dst func(part string) string // where each part of the seed goes
}

// captureSteps copy a running pod without stopping it: its file writes
// flushed, a checkpoint that leaves it running, its writable layer and
// run directory. The same loop as provisioning runs them; a failure
// removes what was written. Fork and template snapshot share them.
func captureSteps() steps[*capture] {
	return steps[*capture]{verb: "capture", list: []step[*capture]{
		{name: "sync", do: func(ctx context.Context, c *capture) error { return syncFiles(ctx, c.unit) }},
		{name: "checkpoint", do: captureCheckpoint, undo: captureDiscard(snapshots.CheckpointDir), partial: true},
		{name: "layer", do: captureLayer, undo: captureDiscard(snapshots.UpperDir), partial: true},
		{name: "run", do: captureRun, undo: captureDiscard(snapshots.RunDir), partial: true},
	}}
}

func captureCheckpoint(ctx context.Context, c *capture) error {
	dir := c.dst(snapshots.CheckpointDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return c.m.cfg.Runtime.Checkpoint(ctx, c.id, oci.CheckpointOpts{ImagePath: dir, LeaveRunning: true})
}

// captureLayer copies the pod's writable layer (overlay form: whiteouts
// and opaque marks included). It runs after the checkpoint, while the
// pod runs on: files changed in between are the copy's, not the
// checkpoint's (docs/snapshots.md).
func captureLayer(ctx context.Context, c *capture) error {
	return copyTree(ctx, upperOf(c.dir), c.dst(snapshots.UpperDir))
}

func captureRun(ctx context.Context, c *capture) error {
	return copyTree(ctx, c.m.runDir(c.id), c.dst(snapshots.RunDir))
}

func captureDiscard(part string) func(context.Context, *capture) error {
	return func(_ context.Context, c *capture) error { return os.RemoveAll(c.dst(part)) }
}

// upperOf is the writable layer of the pod in dir (rootfs's layout: in
// its capped storage when it has one).
func upperOf(dir string) string {
	if st, err := os.Stat(filepath.Join(dir, "storage", "upper")); err == nil && st.IsDir() {
		return filepath.Join(dir, "storage", "upper")
	}
	return filepath.Join(dir, "upper")
}

// captureRunning runs captureSteps on running pod id into dst. The
// caller holds the pod's lock.
func (m *Manager) captureRunning(ctx context.Context, id string, dst func(string) string) error {
	p, err := m.cfg.Store.GetPod(ctx, id)
	if err != nil {
		return err
	}
	if p.State != lifecycle.Running {
		return fmt.Errorf("pod %s is %s, not running: %w", id, p.State, errdefs.ErrConflict)
	}
	c := &capture{unit: m.unitFor(id), dst: dst}
	return captureSteps().up(ctx, c, &timing{}, func(step string, err error) {
		m.log.Warn("undo capture "+step, "pod", id, "err", err)
	})
}

// snapshotKey hashes what shapes a pod's runtime: a restored pod gets
// its seed's processes, environment, limits and image, so any change in
// them (a new image, an edited template) must give another key. The init
// binary is in it too: the restored init runs the code it was started
// with. Name, ID, hostname, ports and subnet are per pod and set anew
// on restore.
func (m *Manager) snapshotKey(spec *podspec.Pod, digest string) string {
	var initStamp string
	if fi, err := os.Stat(m.cfg.InitBinary); err == nil {
		initStamp = fmt.Sprintf("%d-%d", fi.Size(), fi.ModTime().UnixNano())
	}
	b, _ := json.Marshal(struct {
		Template, ImageDigest, Init string
		Resources                   podspec.Resources
		Services                    []podspec.Service
		Env                         map[string]string
		User, WorkingDir            string
		Checks                      []podspec.NamedHealthCheck
		Egress                      *podspec.Egress
		DNS                         *podspec.DNS
		Bandwidth                   *podspec.Bandwidth
		Ports                       []int
	}{spec.Template, digest, initStamp, spec.Resources, spec.Services, spec.Environment, spec.User,
		spec.WorkingDir, spec.HealthChecks, spec.Network.Egress, spec.Network.DNS, spec.Network.Bandwidth, internalPorts(spec)})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// internalPorts are the ports the pod's services listen on (host ports
// are each pod's own and not in the key).
func internalPorts(spec *podspec.Pod) []int {
	var out []int
	for _, p := range spec.Network.Ports {
		out = append(out, p.Internal)
	}
	return out
}

// SnapshotTemplate implements api.Service.
func (m *Manager) SnapshotTemplate(ctx context.Context, req api.SnapshotRequest) (*api.Snapshot, error) {
	if m.cfg.Snapshots == nil {
		return nil, fmt.Errorf("template snapshots are off on this node: %w", errdefs.ErrUnavailable)
	}
	if req.Template == "" {
		return nil, fmt.Errorf("template: required: %w", errdefs.ErrInvalidArgument)
	}
	if _, err := m.cfg.Templates.Get(req.Template); err != nil {
		return nil, err
	}
	p, err := m.snapshotSource(ctx, req)
	if err != nil {
		return nil, err
	}
	unlock := m.lock(p.ID)
	defer unlock()
	return m.snapshot(ctx, p.ID)
}

// snapshotSource picks the running pod, all of its services ready, of
// req's template (req.Pod, when named).
func (m *Manager) snapshotSource(ctx context.Context, req api.SnapshotRequest) (*store.Pod, error) {
	if req.Pod != "" {
		p, err := m.find(ctx, req.Pod)
		if err != nil {
			return nil, err
		}
		if spec, err := decodeSpec(p); err != nil || spec.Template != req.Template {
			return nil, fmt.Errorf("pod %s: not of template %s: %w", req.Pod, req.Template, errdefs.ErrInvalidArgument)
		}
		return p, nil
	}
	all, err := m.cfg.Store.ListPods(ctx)
	if err != nil {
		return nil, err
	}
	for i := range all {
		p := &all[i]
		spec, err := decodeSpec(p)
		if err != nil || spec.Template != req.Template || p.State != lifecycle.Running {
			continue
		}
		if st, err := supervisor.ReadStatus(m.statusFile(p.ID)); err == nil && st.Ready {
			return p, nil
		}
	}
	return nil, fmt.Errorf("no running pod of template %s with every service healthy: %w", req.Template, errdefs.ErrNotFound)
}

// snapshot captures running pod id as its template's snapshot (under
// the pod's lock) and evicts what the cap no longer holds.
func (m *Manager) snapshot(ctx context.Context, id string) (*api.Snapshot, error) {
	p, err := m.cfg.Store.GetPod(ctx, id)
	if err != nil {
		return nil, err
	}
	spec, err := decodeSpec(p)
	if err != nil {
		return nil, err
	}
	st := m.statusOf(ctx, p)
	if spec.GithubRepo != "" {
		return nil, fmt.Errorf("pod %s: a pod with a cloned repository is not a template's snapshot: %w", id, errdefs.ErrInvalidArgument)
	}
	key := m.snapshotKey(spec, st.ImageDigest)
	t0 := time.Now()
	pend, err := m.cfg.Snapshots.Begin(snapshots.Meta{Key: key, Template: spec.Template, ImageDigest: st.ImageDigest, SourcePod: id})
	if err != nil {
		return nil, err
	}
	if err := m.captureRunning(ctx, id, pend.Path); err != nil {
		pend.Abort()
		return nil, fmt.Errorf("snapshot of pod %s: %w", id, err)
	}
	meta, evicted, err := pend.Commit()
	if err != nil {
		return nil, err
	}
	m.event(ctx, id, "snapshot", "Snapshotted", fmt.Sprintf("template %s snapshot %s: %.1f MiB in %s",
		spec.Template, key, float64(meta.Bytes)/(1<<20), time.Since(t0).Round(time.Millisecond)))
	for _, k := range evicted {
		m.event(ctx, id, "snapshot", "SnapshotEvicted", "snapshot "+k+" removed: the snapshots' size cap")
	}
	return apiSnapshot(meta), nil
}

func apiSnapshot(m *snapshots.Meta) *api.Snapshot {
	return &api.Snapshot{Key: m.Key, Template: m.Template, ImageDigest: m.ImageDigest, SourcePod: m.SourcePod,
		Bytes: m.Bytes, CreatedAt: m.CreatedAt, LastUsed: m.LastUsed}
}

// ListSnapshots implements api.Service.
func (m *Manager) ListSnapshots(_ context.Context) ([]api.Snapshot, error) {
	if m.cfg.Snapshots == nil {
		return []api.Snapshot{}, nil
	}
	all, err := m.cfg.Snapshots.List()
	if err != nil {
		return nil, err
	}
	out := make([]api.Snapshot, 0, len(all))
	for i := range all {
		out = append(out, *apiSnapshot(&all[i]))
	}
	return out, nil
}

// RemoveSnapshot implements api.Service.
func (m *Manager) RemoveSnapshot(_ context.Context, key string) error {
	if m.cfg.Snapshots == nil {
		return fmt.Errorf("snapshot %s: %w", key, errdefs.ErrNotFound)
	}
	return m.cfg.Snapshots.Remove(key)
}

// afterSeed runs once a pod is ready: a fork's seed has served; a cold
// pod of a template with no snapshot yet is snapshotted in the
// background when node.yaml asks for it (snapshots.auto).
func afterSeed(ctx context.Context, u *unit) error {
	if err := dropForkSeed(ctx, u); err != nil {
		return err
	}
	m := u.m
	if !m.cfg.AutoSnapshot || m.cfg.Snapshots == nil || u.seed != nil || u.spec.Template == "" || u.spec.GithubRepo != "" || u.img == nil {
		return nil
	}
	if _, err := m.cfg.Snapshots.Get(m.snapshotKey(u.spec, u.img.Image.Digest)); err == nil {
		return nil
	}
	id := u.id
	m.background(id, func(ctx context.Context) error {
		if _, err := m.snapshot(ctx, id); err != nil {
			m.event(ctx, id, "warning", "SnapshotFailed", "automatic template snapshot: "+err.Error())
		}
		return nil
	})
	return nil
}
