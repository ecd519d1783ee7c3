package pods

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pinacle/pinacle-node/imagestore"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/netns"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/portfwd"
	"github.com/pinacle/pinacle-node/rootfs"
)

// host is the fakes' shared record: every call, in order, and the faults
// to inject, by call name ("net.setup", "runtime.create", ...).
type host struct {
	mu     sync.Mutex
	calls  []string
	faults map[string]error
	// onCreate runs in the fake runsc create (e.g. to write init's status).
	onCreate func(bundle string)
	// stats is what the fake forwarder's Stats returns.
	stats portfwd.Stats
	// onStepAside runs in the fake SetStateIf before proceed looks (a
	// connection arriving as the ports step aside).
	onStepAside func()
}

func (h *host) setStats(s portfwd.Stats) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stats = s
}

func newHost() *host { return &host{faults: map[string]error{}} }

// call records name and returns the fault injected for it; a failing
// call is recorded as name + "!".
func (h *host) call(name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	err := h.faults[name]
	if err != nil {
		name += "!"
	}
	h.calls = append(h.calls, name)
	return err
}

func (h *host) fail(name string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		delete(h.faults, name)
		return
	}
	h.faults[name] = err
}

func (h *host) log() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

func (h *host) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = nil
}

// after returns the calls after the first one named from, keeping only
// those in keep.
func (h *host) after(from string, keep ...string) []string {
	calls := h.log()
	i := slices.Index(calls, from)
	if i < 0 {
		return nil
	}
	var out []string
	for _, c := range calls[i+1:] {
		if slices.Contains(keep, c) {
			out = append(out, c)
		}
	}
	return out
}

// fakeRuntime keeps sandboxes in a map; Wait blocks until one is killed
// or deleted.
type fakeRuntime struct {
	h  *host
	mu sync.Mutex
	// sandboxes maps an ID to a channel closed when the sandbox ends.
	sandboxes map[string]chan struct{}
	// pids, when set for an ID, is the sandbox process State reports
	// (none: 0, which the liveness check trusts).
	pids map[string]int
}

var _ oci.Runtime = (*fakeRuntime)(nil)

func (r *fakeRuntime) Create(_ context.Context, id, bundle string, o oci.CreateOpts) error {
	err := r.h.call("runtime.create")
	r.mu.Lock()
	// A failed runsc run can leave the sandbox created: the fake always does.
	r.sandboxes[id] = make(chan struct{})
	r.mu.Unlock()
	if err == nil && r.h.onCreate != nil {
		r.h.onCreate(bundle)
	}
	return err
}

func (r *fakeRuntime) Start(context.Context, string) error { return r.h.call("runtime.start") }

// Run leaves an exited sandbox behind, to be deleted; its process exits 7.
func (r *fakeRuntime) Run(_ context.Context, id, _ string, _ oci.CreateOpts) (oci.ExitInfo, error) {
	err := r.h.call("runtime.run")
	ch := make(chan struct{})
	close(ch)
	r.mu.Lock()
	r.sandboxes[id] = ch
	r.mu.Unlock()
	if err != nil {
		return oci.ExitInfo{}, err
	}
	return oci.ExitInfo{Code: 7}, nil
}

func (r *fakeRuntime) State(_ context.Context, id string) (oci.State, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.sandboxes[id]; !ok {
		return oci.State{}, fmt.Errorf("%s: %w", id, errdefs.ErrNotFound)
	}
	select {
	case <-r.sandboxes[id]:
		return oci.State{ID: id, Status: oci.StatusStopped}, nil
	default:
	}
	return oci.State{ID: id, Status: oci.StatusRunning, Pid: r.pids[id]}, nil
}

func (r *fakeRuntime) List(context.Context) ([]oci.State, error) { return nil, nil }

// Exec returns at once, or for "block" when ctx ends.
func (r *fakeRuntime) Exec(ctx context.Context, _ string, o oci.ExecOpts) (int, error) {
	if len(o.Args) > 0 && o.Args[0] == "block" {
		<-ctx.Done()
		return 137, ctx.Err()
	}
	return 0, nil
}

// Kill ends the sandbox (as init does on SIGTERM).
func (r *fakeRuntime) Kill(_ context.Context, id string, _ syscall.Signal, _ bool) error {
	r.mu.Lock()
	ch, ok := r.sandboxes[id]
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s: %w", id, errdefs.ErrNotFound)
	}
	if err := r.h.call("runtime.kill"); err != nil {
		return err
	}
	r.end(id, ch)
	return nil
}

func (r *fakeRuntime) end(id string, ch chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

func (r *fakeRuntime) Wait(ctx context.Context, id string) (oci.ExitInfo, error) {
	r.mu.Lock()
	ch, ok := r.sandboxes[id]
	r.mu.Unlock()
	if !ok {
		return oci.ExitInfo{}, fmt.Errorf("%s: %w", id, errdefs.ErrNotFound)
	}
	select {
	case <-ch:
		return oci.ExitInfo{Code: 0}, nil
	case <-ctx.Done():
		return oci.ExitInfo{}, ctx.Err()
	}
}

// Delete of a sandbox that is not there is ErrNotFound and not recorded:
// only the removal of a real sandbox is an undo worth counting.
func (r *fakeRuntime) Delete(_ context.Context, id string, _ bool) error {
	r.mu.Lock()
	ch, ok := r.sandboxes[id]
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s: %w", id, errdefs.ErrNotFound)
	}
	if err := r.h.call("runtime.delete"); err != nil {
		return err
	}
	r.end(id, ch)
	r.mu.Lock()
	delete(r.sandboxes, id)
	r.mu.Unlock()
	return nil
}

// crash makes the sandbox die on its own.
func (r *fakeRuntime) crash(id string) {
	r.mu.Lock()
	ch := r.sandboxes[id]
	r.mu.Unlock()
	r.end(id, ch)
}

func (r *fakeRuntime) alive(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.sandboxes[id]
	return ok
}

// Checkpoint writes a file into the image directory; the sandbox then
// stops, as runsc's does.
func (r *fakeRuntime) Checkpoint(_ context.Context, id string, o oci.CheckpointOpts) error {
	if err := r.h.call("runtime.checkpoint"); err != nil {
		return err
	}
	r.mu.Lock()
	ch, ok := r.sandboxes[id]
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s: %w", id, errdefs.ErrNotFound)
	}
	r.end(id, ch)
	return os.WriteFile(filepath.Join(o.ImagePath, "checkpoint.img"), []byte("memory"), 0o600)
}

// Restore needs the image Checkpoint wrote; it leaves a running sandbox.
func (r *fakeRuntime) Restore(_ context.Context, id, _ string, o oci.RestoreOpts) error {
	if err := r.h.call("runtime.restore"); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(o.ImagePath, "checkpoint.img")); err != nil {
		return err
	}
	r.mu.Lock()
	r.sandboxes[id] = make(chan struct{})
	r.mu.Unlock()
	return nil
}
func (r *fakeRuntime) Stats(context.Context, string) (oci.Stats, error) { return oci.Stats{}, nil }

func (r *fakeRuntime) KillStale(context.Context, string) error { return nil }

// fakeNet hands out 10.88.0.2; a pod's namespace is a file in dir.
type fakeNet struct {
	h   *host
	dir string
}

var _ netns.Manager = fakeNet{}

func (n fakeNet) Setup(_ context.Context, s netns.Spec) (*netns.Attachment, error) {
	if err := n.h.call("net.setup"); err != nil {
		return nil, err
	}
	path := filepath.Join(n.dir, s.PodID)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		return nil, err
	}
	return &netns.Attachment{PodID: s.PodID, IP: netip.MustParseAddr("10.88.0.2"), NetnsPath: path, Hostname: s.Hostname}, nil
}

func (n fakeNet) Teardown(_ context.Context, id string) error {
	if err := n.h.call("net.teardown"); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(n.dir, id)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
func (n fakeNet) Remake(_ context.Context, s netns.Spec) (*netns.Attachment, error) {
	if err := n.h.call("net.remake"); err != nil {
		return nil, err
	}
	path := filepath.Join(n.dir, s.PodID)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		return nil, err
	}
	return &netns.Attachment{PodID: s.PodID, IP: netip.MustParseAddr("10.88.0.2"), NetnsPath: path, Hostname: s.Hostname}, nil
}
func (n fakeNet) RestoreAddress(context.Context, string) error {
	return n.h.call("net.restoreaddr")
}
func (n fakeNet) Get(context.Context, string) (*netns.Attachment, error) {
	return nil, errdefs.ErrNotFound
}
func (n fakeNet) List(context.Context) ([]*netns.Attachment, error) { return nil, nil }
func (n fakeNet) RemoveNodeRules(context.Context) error             { return nil }
func (n fakeNet) RunWarmPool(ctx context.Context) error             { <-ctx.Done(); return nil }
func (n fakeNet) DrainWarmPool(context.Context) error               { return nil }
func (n fakeNet) ResumeDNSFilters(context.Context) error            { return nil }

// fakePorts allocates host ports from 30000.
type fakePorts struct{ h *host }

var _ portfwd.Forwarder = fakePorts{}

func (p fakePorts) Allocate(_ context.Context, id string, reqs []portfwd.PortRequest) ([]portfwd.Allocation, error) {
	if err := p.h.call("ports.allocate"); err != nil {
		return nil, err
	}
	var out []portfwd.Allocation
	for i, r := range reqs {
		out = append(out, portfwd.Allocation{PodID: id, Name: r.Name, PodPort: r.PodPort, HostPort: uint16(30000 + i)})
	}
	return out, nil
}

func (p fakePorts) Release(context.Context, string) error { return p.h.call("ports.release") }
func (p fakePorts) Allocations(string) []portfwd.Allocation {
	return nil
}
func (p fakePorts) Start(context.Context, string, netip.Addr) error { return p.h.call("ports.start") }
func (p fakePorts) Stop(context.Context, string) error              { return p.h.call("ports.stop") }
func (p fakePorts) SetTarget(string, netip.Addr) error              { return nil }
func (p fakePorts) SetState(_ string, s portfwd.State) error {
	return p.h.call("ports.setstate." + string(s))
}
func (p fakePorts) SetStateIf(id string, s portfwd.State, proceed func(portfwd.PodStats) bool) error {
	if err := p.h.call("ports.setstate." + string(s)); err != nil {
		return err
	}
	p.h.mu.Lock()
	hook := p.h.onStepAside
	p.h.mu.Unlock()
	if hook != nil {
		hook()
	}
	ps := portfwd.PodStats{PodID: id}
	for _, x := range p.Stats().Pods {
		if x.PodID == id {
			ps = x
		}
	}
	if !proceed(ps) {
		if err := p.h.call("ports.setstate." + string(portfwd.Running)); err != nil { // as the real one does
			return err
		}
		return portfwd.ErrActive
	}
	return nil
}
func (p fakePorts) Stats() portfwd.Stats {
	p.h.mu.Lock()
	defer p.h.mu.Unlock()
	return p.h.stats
}
func (p fakePorts) Close(context.Context) error { return nil }

// fakeImages holds one image, fake/img:1, once pulled (or from the start).
type fakeImages struct {
	h      *host
	layers string
	mu     sync.Mutex
	have   bool
	refs   []string // RootFS lookups
}

var _ imagestore.Store = (*fakeImages)(nil)

const fakeDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func (s *fakeImages) RootFS(_ context.Context, ref string) (*imagestore.RootFS, error) {
	s.mu.Lock()
	s.refs = append(s.refs, ref)
	have := s.have
	s.mu.Unlock()
	if err := s.h.call("image.rootfs"); err != nil {
		return nil, err
	}
	if !have || (ref != "docker.io/fake/img:1" && ref != fakeDigest) {
		return nil, fmt.Errorf("image %s: %w", ref, errdefs.ErrNotFound)
	}
	return &imagestore.RootFS{
		Image:     &imagestore.Image{Digest: fakeDigest, Refs: []string{"docker.io/fake/img:1"}},
		LayerDirs: []string{s.layers},
		Config:    &v1.ConfigFile{},
	}, nil
}

func (s *fakeImages) Pull(_ context.Context, ref string, opts ...imagestore.PullOption) (*imagestore.Image, error) {
	if err := s.h.call("image.pull"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.have = true
	s.mu.Unlock()
	return &imagestore.Image{Digest: fakeDigest}, nil
}

func (s *fakeImages) AddLease(_ context.Context, holder, image string) (*imagestore.Lease, error) {
	if err := s.h.call("image.lease"); err != nil {
		return nil, err
	}
	return &imagestore.Lease{Holder: holder, Image: image}, nil
}

func (s *fakeImages) RemoveLease(context.Context, string) error { return s.h.call("image.unlease") }
func (s *fakeImages) Import(context.Context, string, ...imagestore.PullOption) ([]*imagestore.Image, error) {
	return nil, nil
}
func (s *fakeImages) List(context.Context) ([]*imagestore.Image, error) { return nil, nil }
func (s *fakeImages) Get(context.Context, string) (*imagestore.Image, error) {
	return nil, errdefs.ErrNotFound
}
func (s *fakeImages) Remove(context.Context, string) ([]string, error)    { return nil, nil }
func (s *fakeImages) GC(context.Context) (*imagestore.GCResult, error)    { return nil, nil }
func (s *fakeImages) Leases(context.Context) ([]*imagestore.Lease, error) { return nil, nil }

// fakeRootfs "mounts" by making podDir/rootfs a directory and remembering it.
type fakeRootfs struct {
	h       *host
	mu      sync.Mutex
	mounted map[string]bool
}

var _ rootfs.Manager = (*fakeRootfs)(nil)

func (f *fakeRootfs) Mount(_ context.Context, lower []string, podDir string, _ rootfs.Options) (*rootfs.Rootfs, error) {
	if err := f.h.call("rootfs.mount"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mounted[podDir] {
		return nil, fmt.Errorf("%s: %w", podDir, errdefs.ErrAlreadyExists)
	}
	p := filepath.Join(podDir, "rootfs")
	if err := os.MkdirAll(p, 0o755); err != nil {
		return nil, err
	}
	f.mounted[podDir] = true
	return &rootfs.Rootfs{Path: p}, nil
}

func (f *fakeRootfs) Unmount(_ context.Context, podDir string) error {
	if err := f.h.call("rootfs.unmount"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.mounted, podDir)
	return nil
}

func (f *fakeRootfs) Remove(ctx context.Context, podDir string) error {
	if err := f.h.call("rootfs.remove"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.mounted, podDir)
	return os.RemoveAll(filepath.Join(podDir, "rootfs"))
}

func (f *fakeRootfs) Mounted(podDir string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mounted[podDir], nil
}
