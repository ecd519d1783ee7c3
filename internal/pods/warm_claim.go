package pods

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/netns"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/podspec"
	"github.com/pinacle/pinacle-node/templates"
)

// warmKey is the shape a warm entry must have to serve spec (its image
// and resource limits), or "" and why no entry can: what a running
// sandbox cannot take on afterwards (a network other than the default,
// a repository cloned into the workspace) needs a cold create.
func warmKey(spec *podspec.Pod) (key, why string) {
	if spec.GithubRepo != "" {
		return "", "the pod clones a repository into its workspace"
	}
	limits, err := spec.Resources.Limits()
	if err != nil {
		return "", err.Error()
	}
	ns, err := netSpec(spec.ID, spec)
	if err != nil {
		return "", err.Error()
	}
	def := netns.Spec{PodID: ns.PodID}
	ns.Hostname = ""
	if ns.Policy.Mode == netns.ModeDefault {
		ns.Policy.Mode = ""
	}
	if !reflect.DeepEqual(ns, def) {
		return "", "the pod's network is not the default (subnet, egress, bandwidth or DNS)"
	}
	return fmt.Sprintf("%s|%+v", spec.BaseImage, limits), ""
}

// claimWarm is create's hook, between resolving the spec and recording
// the pod: a spec that names no ID and has an entry's shape takes that
// entry, and is resolved again with the entry's ID, as a create given
// that ID would have resolved it. The pod's first bring-up (newUnit,
// takeWarm) finds the claim, or the reason there was none, and says so in
// the pod's events. A create that fails to record the pod hands the entry
// back (unclaimWarm).
func (m *Manager) claimWarm(ctx context.Context, req api.CreateRequest, spec *podspec.Pod) *podspec.Pod {
	w := m.warm
	if !w.enabled() {
		return spec
	}
	key, why := warmKey(spec)
	if key != "" {
		w.mu.Lock()
		if w.recent == nil || w.recent.key != key {
			w.recent = &warmShapeSpec{spec: podspec.Pod{BaseImage: spec.BaseImage, Resources: spec.Resources}, key: key, source: "recent"}
			defer w.poke()
		}
		w.mu.Unlock()
	}
	if key != "" && m.snapshotServes(ctx, spec) {
		return spec // restored with its services up: better than a bare sandbox
	}
	note := warmNote{reason: why}
	if key != "" && req.Spec.ID != "" {
		note.reason = "the request names the pod's ID"
	} else if key != "" {
		if e := w.take(key); e == nil {
			note.reason = "no warm sandbox of this shape is ready"
		} else if re, err := m.resolveAs(req, e); err != nil {
			note.reason = err.Error()
			m.returnWarm(ctx, e)
		} else {
			spec, note = re, warmNote{e: e}
		}
	}
	w.mu.Lock()
	w.claims[spec.ID] = note
	w.mu.Unlock()
	return spec
}

// resolveAs resolves req with e's ID, checking that e still runs the
// image the spec names (a pull since may have moved its tag).
func (m *Manager) resolveAs(req api.CreateRequest, e *warmEntry) (*podspec.Pod, error) {
	re, err := m.cfg.Templates.ResolveRequest(templates.Request{Spec: req.Spec, Template: req.Template, Sets: req.Sets}, func() string { return e.ID })
	if err != nil {
		return nil, err
	}
	img, err := m.cfg.Images.RootFS(context.Background(), re.BaseImage)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", re.BaseImage, err)
	}
	if img.Image.Digest != e.Digest {
		return nil, fmt.Errorf("image %s is now %s; the warm sandbox runs %s", re.BaseImage, img.Image.Digest, e.Digest)
	}
	return re, nil
}

// take removes the oldest ready entry of key from the pool.
func (w *warmPool) take(key string) *warmEntry {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.running {
		return nil
	}
	var oldest *warmEntry
	for _, e := range w.entries {
		if e.Ready && e.Key == key && (oldest == nil || e.Created.Before(oldest.Created)) {
			oldest = e
		}
	}
	if oldest != nil {
		delete(w.entries, oldest.ID)
		w.last = time.Now()
		w.poke()
	}
	return oldest
}

// returnWarm puts an entry back in the pool, or removes it when the pool
// is draining.
func (m *Manager) returnWarm(ctx context.Context, e *warmEntry) {
	w := m.warm
	w.mu.Lock()
	back := w.running
	if back {
		w.entries[e.ID] = e
	}
	w.mu.Unlock()
	if !back {
		m.removeWarm(context.WithoutCancel(ctx), e.ID)
	}
}

// unclaimWarm undoes claimWarm for a pod that was not recorded.
func (m *Manager) unclaimWarm(ctx context.Context, id string) {
	w := m.warm
	w.mu.Lock()
	note, ok := w.claims[id]
	delete(w.claims, id)
	w.mu.Unlock()
	if ok && note.e != nil {
		m.returnWarm(ctx, note.e)
	}
}

// takeWarm hands u the warm sandbox its create claimed (or records why
// the pod is created cold). The entry's record goes: the pod's now names
// everything the entry had.
func (m *Manager) takeWarm(u *unit) {
	w := m.warm
	w.mu.Lock()
	note, ok := w.claims[u.id]
	delete(w.claims, u.id)
	w.mu.Unlock()
	switch {
	case !ok:
		return
	case note.e == nil:
		m.event(m.bg, u.id, "progress", "ColdCreate", "no warm sandbox claimed: "+note.reason)
		return
	}
	e := note.e
	u.warm = e
	att := *e.u.att
	att.Hostname = u.nspec.Hostname
	u.att, u.rfs = &att, e.u.rfs
	if err := os.Remove(m.warmRecord(e.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		m.log.Warn("warm pool: removing a claimed entry's record", "id", e.ID, "err", err)
	}
	m.event(m.bg, u.id, "progress", "WarmClaimed", fmt.Sprintf("claimed a warm sandbox (%s, booted %s ago)", e.Source, time.Since(e.Created).Round(time.Millisecond)))
}

// writeClaimedBundle writes the pod's bundle as a cold create would. The
// running sandbox bind-mounted the /etc files it was created with, and
// the bundle replaces files by rename: their old inodes get the new
// contents too, so the pod sees its own hostname and hosts.
func (m *Manager) writeClaimedBundle(u *unit) error {
	var old []*os.File
	for _, name := range []string{"hostname", "hosts", "resolv.conf"} {
		f, err := os.OpenFile(filepath.Join(m.bundleDir(u.id), name), os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("warm sandbox bundle: %w", err)
		}
		defer f.Close()
		old = append(old, f)
	}
	if err := m.writeBundle(u.id, u.spec, u.img, u.rfs.Path, u.att, u.limits, false); err != nil {
		return err
	}
	for _, f := range old {
		if err := rewriteFrom(f, filepath.Join(m.bundleDir(u.id), filepath.Base(f.Name()))); err != nil {
			return fmt.Errorf("warm sandbox bundle: %w", err)
		}
	}
	return nil
}

// rewriteFrom replaces the contents of f with those of the file at path.
func rewriteFrom(f *os.File, path string) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err = io.Copy(f, src)
	return err
}

// claimExecTimeout bounds the claim's runsc exec.
const claimExecTimeout = 30 * time.Second

// claimSandbox hands the warm sandbox to the pod: `init claim` sets the
// hostname and has init load the pod's services. It reports whether the
// pod has its sandbox; when the claim fails, the warm sandbox goes (with
// an event) and the caller creates one cold from the same bundle.
func (m *Manager) claimSandbox(ctx context.Context, u *unit) bool {
	id := u.id
	err := os.Remove(m.statusFile(id))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		m.log.Warn("claim: stale status", "pod", id, "err", err)
	}
	if m.warm.cfg.FailClaims {
		err = errors.New("claim failure injected (fault seam)")
	} else {
		cctx, cancel := context.WithTimeout(ctx, claimExecTimeout)
		var code int
		code, err = m.cfg.Runtime.Exec(cctx, id, oci.ExecOpts{
			Args: []string{sandboxBin, "init", "claim", "--hostname", hostname(u.spec)}, User: "0:0", Cwd: "/",
			AddCaps: []string{"CAP_SYS_ADMIN"},
		})
		cancel()
		if err == nil && code != 0 {
			err = fmt.Errorf("init claim exited %d", code)
		}
	}
	if err == nil {
		return true
	}
	m.event(ctx, id, "warning", "WarmClaimFailed", "claiming the warm sandbox failed, creating it cold: "+err.Error())
	if derr := m.deleteSandbox(ctx, id); derr != nil {
		m.log.Warn("claim: removing the warm sandbox", "pod", id, "err", derr)
	}
	// runsc took the address off the interface when it created the warm
	// sandbox; the cold one needs it there.
	if rerr := m.cfg.Net.RestoreAddress(ctx, id); rerr != nil {
		m.log.Warn("claim: restoring the address", "pod", id, "err", rerr)
	}
	u.warm = nil
	return false
}

// warmFits says whether one more entry with resources r fits the node:
// entries count against its memory like the pods' limits do.
func (m *Manager) warmFits(ctx context.Context, r podspec.Resources) error {
	c, err := m.capacity(ctx)
	if err != nil {
		return err
	}
	l, err := r.Limits()
	if err != nil {
		return err
	}
	if c.MemoryBytes > 0 && c.PodsMemoryBytes+c.WarmMemoryBytes+l.MemoryBytes > c.MemoryBytes {
		return fmt.Errorf("no room: pods and warm sandboxes would hold %d of the node's %d bytes of memory",
			c.PodsMemoryBytes+c.WarmMemoryBytes+l.MemoryBytes, c.MemoryBytes)
	}
	return nil
}
