package pods

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/pinacle/pinacle-node/internal/fileutil"
	"github.com/pinacle/pinacle-node/podspec"
	"github.com/pinacle/pinacle-node/templates"
)

// WarmConfig is the warm sandbox pool (docs/warmpool.md): sandboxes booted
// ahead of time, each a pod-to-be with its ID, rootfs, network and a
// standby init, which a matching create claims. The zero value is off.
type WarmConfig struct {
	// Shapes are kept whatever pods are created.
	Shapes []WarmShape
	// Recent is how many entries are kept for the shape (image and
	// resources) of the most recent create that could have claimed one.
	Recent int
	// Max caps the entries of all shapes together.
	Max int
	// RefillDelay is how long a refill waits after a claim, so it does
	// not compete with the claiming pod's start (default 500ms).
	RefillDelay time.Duration
	// FailClaims makes every claim fail after it took its entry: the
	// fault seam for the fallback to a cold create (tests only).
	FailClaims bool
}

// WarmShape is one image (or template) and resource tier to keep ready.
type WarmShape struct {
	Template string
	Image    string
	Tier     string
	Count    int
}

// warmEntry is one pool entry: a pod-to-be, recorded in DataRoot/warm so
// that a restart finds (and removes) what a crash left.
type warmEntry struct {
	ID        string            `json:"id"`
	Key       string            `json:"key"`
	Image     string            `json:"image"`
	Digest    string            `json:"digest,omitempty"`
	Resources podspec.Resources `json:"resources"`
	Source    string            `json:"source"`
	Created   time.Time         `json:"created"`
	Ready     bool              `json:"-"`

	u *unit // its bring-up: network, image, rootfs, sandbox
}

// warmShapeSpec is what a shape keeps ready: an image and resources.
type warmShapeSpec struct {
	spec   podspec.Pod // BaseImage and Resources only
	key    string
	count  int
	source string
}

// warmPool holds the entries; Manager.RunWarm fills it.
type warmPool struct {
	cfg WarmConfig

	mu      sync.Mutex
	entries map[string]*warmEntry // by ID, ready or filling
	claims  map[string]warmNote   // by pod ID, until the pod's unit takes it
	recent  *warmShapeSpec
	running bool
	last    time.Time // last claim
	kick    chan struct{}
	fillErr string // the last fill's failure, for the status
}

// warmNote is what a create found in the pool, for its pod's events.
type warmNote struct {
	e      *warmEntry // nil: cold
	reason string     // why it is cold
}

func newWarmPool(cfg WarmConfig) *warmPool {
	if cfg.RefillDelay <= 0 {
		cfg.RefillDelay = 500 * time.Millisecond
	}
	return &warmPool{cfg: cfg, entries: map[string]*warmEntry{}, claims: map[string]warmNote{}, kick: make(chan struct{}, 1)}
}

func (w *warmPool) enabled() bool {
	return w.cfg.Max > 0 && (w.cfg.Recent > 0 || len(w.cfg.Shapes) > 0)
}

func (w *warmPool) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (m *Manager) warmDir() string { return filepath.Join(m.cfg.DataRoot, "warm") }

func (m *Manager) warmRecord(id string) string { return filepath.Join(m.warmDir(), id+".json") }

// RunWarm keeps the warm pool filled until ctx ends, then tears every
// unclaimed entry down and returns. Call it after Recover.
func (m *Manager) RunWarm(ctx context.Context) {
	w := m.warm
	if !w.enabled() {
		return
	}
	m.recallRecent(ctx)
	w.mu.Lock()
	w.running = true
	w.mu.Unlock()
	defer m.drainWarm()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		m.fillWarm(ctx)
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-tick.C:
		}
	}
}

// recallRecent takes the recent shape, after a restart, from the newest
// pod that could have claimed an entry, so a restarted node warms what it
// warmed before.
func (m *Manager) recallRecent(ctx context.Context) {
	ps, err := m.cfg.Store.ListPods(ctx)
	if err != nil {
		return
	}
	var newest *podspec.Pod
	var at time.Time
	for i := range ps {
		spec, err := decodeSpec(&ps[i])
		if err != nil || ps[i].CreatedAt.Before(at) {
			continue
		}
		if key, _ := warmKey(spec); key != "" {
			newest, at = spec, ps[i].CreatedAt
		}
	}
	if newest == nil {
		return
	}
	key, _ := warmKey(newest)
	w := m.warm
	w.mu.Lock()
	if w.recent == nil {
		w.recent = &warmShapeSpec{spec: podspec.Pod{BaseImage: newest.BaseImage, Resources: newest.Resources}, key: key, source: "recent"}
	}
	w.mu.Unlock()
}

// drainWarm stops claims and tears down every entry left in the pool.
func (m *Manager) drainWarm() {
	w := m.warm
	w.mu.Lock()
	w.running = false
	var es []*warmEntry
	for _, e := range w.entries {
		es = append(es, e)
	}
	w.entries = map[string]*warmEntry{}
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), unwindTimeout)
	defer cancel()
	for _, e := range es {
		m.removeWarm(ctx, e.ID)
	}
}

// shapes lists what the pool keeps, the configured shapes first, within Max.
func (m *Manager) warmShapes() []warmShapeSpec {
	w := m.warm
	var out []warmShapeSpec
	for _, s := range w.cfg.Shapes {
		ss, err := m.shapeSpec(s)
		if err != nil {
			m.log.Warn("warm pool: shape", "template", s.Template, "image", s.Image, "err", err)
			continue
		}
		out = append(out, ss)
	}
	w.mu.Lock()
	if r := w.recent; r != nil && w.cfg.Recent > 0 {
		known := false
		for _, s := range out {
			known = known || s.key == r.key
		}
		if !known {
			rs := *r
			rs.count = w.cfg.Recent
			out = append(out, rs)
		}
	}
	w.mu.Unlock()
	return out
}

// shapeSpec resolves a configured shape as a create of its template or
// image with its tier would.
func (m *Manager) shapeSpec(s WarmShape) (warmShapeSpec, error) {
	req := templates.Request{Spec: podspec.Pod{BaseImage: s.Image, Resources: podspec.Resources{Tier: s.Tier}}, Template: s.Template}
	spec, err := m.cfg.Templates.ResolveRequest(req, newID)
	if err != nil {
		return warmShapeSpec{}, err
	}
	key, why := warmKey(spec)
	if key == "" {
		return warmShapeSpec{}, fmt.Errorf("cannot be kept warm: %s", why)
	}
	src := "image " + s.Image
	if s.Template != "" {
		src = "template " + s.Template
	}
	return warmShapeSpec{spec: podspec.Pod{BaseImage: spec.BaseImage, Resources: spec.Resources}, key: key, count: s.Count, source: src}, nil
}

// fillWarm brings one missing entry up (the loop comes back for the next),
// and removes the entries of shapes no longer kept.
func (m *Manager) fillWarm(ctx context.Context) {
	w := m.warm
	shapes := m.warmShapes()
	want := map[string]int{}
	total := 0
	for _, s := range shapes {
		n := min(s.count, w.cfg.Max-total)
		want[s.key] += max(n, 0)
		total += max(n, 0)
	}
	w.mu.Lock()
	have := map[string]int{}
	var extra []string
	for _, e := range w.entries {
		if have[e.Key]++; have[e.Key] > want[e.Key] && e.Ready {
			extra = append(extra, e.ID)
			delete(w.entries, e.ID)
		}
	}
	wait := time.Until(w.last.Add(w.cfg.RefillDelay))
	w.mu.Unlock()
	for _, id := range extra {
		m.removeWarm(ctx, id)
	}
	if wait > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
	for _, s := range shapes {
		if have[s.key] < want[s.key] {
			if err := m.addWarm(ctx, s); err != nil {
				m.log.Warn("warm pool: fill", "source", s.source, "err", err)
				w.mu.Lock()
				w.fillErr = err.Error()
				w.mu.Unlock()
				return
			}
			w.poke() // more may be missing
			return
		}
	}
}

// warmStepList is the bring-up of an entry: podSteps up to the sandbox,
// without crash points (a pool entry is no operation of a pod's). A step
// that joins one left out joins the next kept one (network: bundle), or
// none (sandbox: it runs in the foreground).
func warmStepList() steps[*unit] {
	keep := map[string]bool{"files": true, "network": true, "image": true, "rootfs": true, "workspace": true, "bundle": true, "sandbox": true}
	var s steps[*unit]
	for i, st := range podSteps.list {
		if !keep[st.name] {
			continue
		}
		if st.join != "" && !keep[st.join] {
			target := st.join
			st.join = ""
			seen := false
			for _, later := range podSteps.list[i+1:] {
				seen = seen || later.name == target
				if seen && keep[later.name] {
					st.join = later.name
					break
				}
			}
		}
		s.list = append(s.list, st)
	}
	return s
}

// addWarm brings up one entry of shape s.
func (m *Manager) addWarm(ctx context.Context, s warmShapeSpec) error {
	w := m.warm
	if err := m.warmFits(ctx, s.spec.Resources); err != nil {
		return err
	}
	id := newID()
	spec := &podspec.Pod{ID: id, Name: id, BaseImage: s.spec.BaseImage, Resources: s.spec.Resources}
	e := &warmEntry{ID: id, Key: s.key, Image: spec.BaseImage, Resources: spec.Resources, Source: s.source, Created: time.Now().UTC()}
	if err := m.writeWarmRecord(e); err != nil {
		return err
	}
	st := &podStatus{}
	u, err := m.newUnit(id, spec, st)
	if err != nil {
		m.removeWarm(ctx, id)
		return err
	}
	u.standby = true
	w.mu.Lock()
	w.entries[id] = e
	w.mu.Unlock()
	t := &timing{}
	if err := warmStepList().up(ctx, u, t, nil); err != nil {
		w.mu.Lock()
		delete(w.entries, id)
		w.mu.Unlock()
		m.removeWarm(context.WithoutCancel(ctx), id)
		return err
	}
	w.mu.Lock()
	e.u, e.Digest = u, u.img.Image.Digest
	_, still := w.entries[id]
	e.Ready = still && w.running
	rec := *e
	w.mu.Unlock()
	if err := m.writeWarmRecord(&rec); err != nil {
		m.log.Warn("warm pool: record", "id", id, "err", err)
	}
	if !still {
		m.removeWarm(context.WithoutCancel(ctx), id) // drained meanwhile
		return nil
	}
	m.log.Info("warm pool: entry ready", append([]any{"id", id, "source", s.source}, t.kv...)...)
	return nil
}

func (m *Manager) writeWarmRecord(e *warmEntry) error {
	if err := os.MkdirAll(m.warmDir(), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return fileutil.WriteAtomic(m.warmRecord(e.ID), b, 0o600)
}

// removeWarm tears entry id down as a delete of a pod would (every undo,
// then every release) and removes its record. Failures are logged: the
// record stays, and the next start tries again.
func (m *Manager) removeWarm(ctx context.Context, id string) {
	u := m.unitFor(id)
	all := steps[*unit]{list: podSteps.list}
	err := m.cfg.Runtime.KillStale(ctx, id)
	if err == nil {
		err = all.down(ctx, u)
	}
	if err == nil {
		err = all.release(ctx, u)
	}
	if err != nil {
		m.log.Warn("warm pool: removing an entry", "id", id, "err", err)
		return
	}
	if err := os.Remove(m.warmRecord(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.log.Warn("warm pool: removing a record", "id", id, "err", err)
	}
}

// RemoveWarmLeftovers removes the warm sandboxes a daemon that died left
// behind (Recover calls it, and so does `pinacle-node cleanup`).
func (m *Manager) RemoveWarmLeftovers(ctx context.Context) { m.removeWarmLeftovers(ctx) }

// removeWarmLeftovers is RemoveWarmLeftovers. A record whose ID is a pod's now was claimed just
// before the crash: the pod's own recovery owns what it names.
func (m *Manager) removeWarmLeftovers(ctx context.Context) {
	des, err := os.ReadDir(m.warmDir())
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			m.log.Warn("warm pool: leftovers", "err", err)
		}
		return
	}
	ids := make([]string, 0, len(des))
	for _, de := range des {
		if id, ok := cutSuffix(de.Name(), ".json"); ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		if _, err := m.cfg.Store.GetPod(ctx, id); err == nil {
			_ = os.Remove(m.warmRecord(id))
			continue
		}
		m.log.Info("warm pool: removing a leftover entry", "id", id)
		m.removeWarm(ctx, id)
	}
}

func cutSuffix(s, suffix string) (string, bool) {
	if len(s) > len(suffix) && s[len(s)-len(suffix):] == suffix {
		return s[:len(s)-len(suffix)], true
	}
	return "", false
}
