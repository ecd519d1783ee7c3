package pods

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pinacle/pinacle-node/imagestore"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/netns"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/podspec"
	"github.com/pinacle/pinacle-node/portfwd"
	"github.com/pinacle/pinacle-node/rootfs"
	"github.com/pinacle/pinacle-node/supervisor"
)

// podSteps bring a pod up (create, start), down (stop, a failed start,
// recovery) and, released, away (delete). See docs/architecture.md, "How
// a pod comes up".
var podSteps = steps[*unit]{crash: true, list: []step[*unit]{
	{name: "files", do: makeFiles, release: removeFiles},
	// CNI ADD costs about as much as everything up to the ports together,
	// so it runs alongside the image and the rootfs.
	{name: "network", do: setupNetwork, undo: teardownNetwork, join: "ports"},
	imageStep[*unit](),
	rootfsStep[*unit](),
	// A fork or a template snapshot: its writable layer and run directory
	// go in before anything reads the rootfs (seed.go).
	{name: "seed", do: applySeed},
	{name: "workspace", do: prepareWorkspace},
	{name: "ports", do: allocatePorts, release: releasePorts},
	{name: "bundle", do: writeBundle},
	// The host ports open while the sandbox boots (binding them costs a
	// fraction of the boot): until the pod listens, a connection is
	// refused, as it would be a moment after start anyway. Stop undoes
	// the forwarder first, so open connections drain while the sandbox
	// still serves them.
	{name: "sandbox", do: startSandbox, undo: stopSandbox, partial: true, join: "ready"},
	{name: "forward", do: startForwarding, undo: stopForwarding, partial: true},
	{name: "ready", do: waitReady},
	{name: "seeded", do: afterSeed},
	// A hibernated pod's checkpoint goes when it is stopped, deleted or
	// started afresh.
	{name: "checkpoint", undo: discardCheckpoint},
}}

// unit is one pod as its steps see it. For undo and release only the
// base's id and dir and the manager are set (a crash leaves no more).
type unit struct {
	base
	m      *Manager
	spec   *podspec.Pod
	st     *podStatus
	limits podspec.Limits
	nspec  netns.Spec
	att    *netns.Attachment // set by the network step
	// graceful lets init stop the services before the sandbox goes (a
	// stop); a failed start removes it at once.
	graceful bool
	// keepListeners makes the down of the forward step leave the host
	// ports listening, hibernated: a cold start after a failed restore,
	// whose waiting connections the cold-started pod serves.
	keepListeners bool
	wake          wakeMode // who asked for a wake (wakeSteps)
	// seed, set by the seed step, makes the sandbox step restore it;
	// seedFailed is that restore's error; noSeed forbids a seed (the
	// cold retry after a failed restore).
	seed       *seed
	seedFailed error
	noSeed     bool
	// claim, set, brings up a warm pool entry: its init waits on
	// standby for a claim over this channel.
	claim *supervisor.ClaimConfig
	// warm is the warm sandbox this pod's create claimed: its network,
	// rootfs and sandbox are up, and the steps hand them to the pod
	// (docs/warmpool.md).
	warm *warmEntry
	// stillIdle, set for an idle hibernate, is asked once more when no
	// new connection can reach the sandbox: false calls it off.
	stillIdle func(portfwd.PodStats) bool
}

// unitFor is what the undo and release of pod id need.
func (m *Manager) unitFor(id string) *unit {
	return &unit{m: m, base: base{id: id, dir: m.podDir(id), images: m.cfg.Images, rootfs: m.cfg.Rootfs}}
}

// newUnit prepares a bring-up of the stored pod; its errors are the
// spec's, found before any step runs.
func (m *Manager) newUnit(id string, spec *podspec.Pod, st *podStatus) (*unit, error) {
	u := m.unitFor(id)
	u.spec, u.st = spec, st
	var err error
	if u.limits, err = spec.Resources.Limits(); err != nil {
		return nil, err
	}
	if u.nspec, err = netSpec(id, spec); err != nil {
		return nil, err
	}
	u.ref, u.pinned, u.noPull = spec.BaseImage, st.ImageDigest, m.cfg.NoPull
	u.ropts = rootfs.Options{StorageBytes: u.limits.StorageBytes, Spares: m.cfg.StorageSpares}
	u.pulling = func(ref string) (func(imagestore.Event), func()) {
		m.event(m.bg, id, "progress", "Pulling", "pulling image "+ref)
		last := time.Now()
		return func(e imagestore.Event) {
			if time.Since(last) > time.Second || e.Phase == imagestore.PhaseDone {
				last = time.Now()
				m.event(m.bg, id, "progress", "Pulling", fmt.Sprintf("%s %s %d/%d", e.Layer, e.Phase, e.Done, e.Total))
			}
		}, func() {}
	}
	m.takeWarm(u)
	return u, nil
}

func makeFiles(_ context.Context, u *unit) error { return os.MkdirAll(u.m.logDir(u.id), 0o755) }

// removeFiles deletes the pod's directory; the rootfs release before it
// made sure nothing in it is still mounted.
func removeFiles(_ context.Context, u *unit) error {
	if err := os.RemoveAll(u.dir); err != nil {
		return err
	}
	u.m.status.drop(u.m.statusFile(u.id))
	return nil
}

func setupNetwork(ctx context.Context, u *unit) error {
	att := u.att
	if u.warm == nil || att == nil { // a claimed warm sandbox's is up already
		var err error
		if att, err = u.m.cfg.Net.Setup(ctx, u.nspec); err != nil {
			return err
		}
	}
	u.att = att
	u.st.IP, u.st.NetnsPath = att.IP.String(), att.NetnsPath
	return nil
}

func teardownNetwork(ctx context.Context, u *unit) error { return u.m.cfg.Net.Teardown(ctx, u.id) }

// prepareWorkspace makes the mount points and the working directory and
// places a fresh clone of the pod's repository.
func prepareWorkspace(ctx context.Context, u *unit) error {
	if err := u.m.prepareRootfs(ctx, u.id, u.rfs.Path, u.spec); err != nil {
		return err
	}
	return u.m.placeClone(ctx, u.id, u.rfs.Path, u.spec)
}

func allocatePorts(ctx context.Context, u *unit) error {
	allocs, err := u.m.cfg.Ports.Allocate(ctx, u.id, portRequests(u.spec))
	if err != nil {
		return err
	}
	u.st.Ports = allocs
	return nil
}

func releasePorts(ctx context.Context, u *unit) error { return u.m.cfg.Ports.Release(ctx, u.id) }

func writeBundle(_ context.Context, u *unit) error {
	if u.warm != nil {
		return u.m.writeClaimedBundle(u)
	}
	return u.m.writeBundle(u.id, u.spec, u.img, u.rfs.Path, u.att, u.limits, u.claim)
}

// startSandbox creates and starts the sandbox in one runsc call. A failed
// call can leave a created sandbox behind (the step is partial).
func startSandbox(ctx context.Context, u *unit) error {
	m, id := u.m, u.id
	if u.warm != nil && m.claimSandbox(ctx, u) {
		return nil
	}
	// A stale status file would read as ready before init wrote its own.
	// A seed's is not stale: it is the restored init's own, written
	// before the checkpoint by the same processes.
	if u.seed == nil {
		if err := os.Remove(m.statusFile(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	logf, err := os.OpenFile(filepath.Join(m.logDir(id), "sandbox.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	// runsc hands the descriptor to the sandbox; ours can go once it ran.
	defer logf.Close()
	// A leftover of an interrupted start.
	if err := m.cfg.Runtime.Delete(ctx, id, true); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("removing a leftover sandbox: %w", err)
	}
	if u.seed != nil {
		return restoreSeed(ctx, u, logf)
	}
	return m.cfg.Runtime.Create(ctx, id, m.bundleDir(id), oci.CreateOpts{Stdout: logf, Stderr: logf, Start: true})
}

// stopSandbox, in a stop, asks init to stop the services (SIGTERM: it
// stops them in reverse dependency order with their grace periods), then
// removes the sandbox, by force once StopTimeout has passed.
func stopSandbox(ctx context.Context, u *unit) error {
	m, id := u.m, u.id
	if u.graceful {
		if err := m.cfg.Runtime.Kill(ctx, id, syscall.SIGTERM, false); err == nil {
			wctx, cancel := context.WithTimeout(ctx, m.cfg.StopTimeout)
			// Its outcome does not matter: the delete below forces.
			_, _ = m.cfg.Runtime.Wait(wctx, id)
			cancel()
		}
	}
	return m.deleteSandbox(ctx, id)
}

func startForwarding(ctx context.Context, u *unit) error {
	return u.m.cfg.Ports.Start(ctx, u.id, u.att.IP)
}

// forwardDrain bounds how long a stop lets open connections finish.
const forwardDrain = 5 * time.Second

func stopForwarding(ctx context.Context, u *unit) error {
	if u.keepListeners {
		// Rules off and open connections closed, as for a hibernate; the
		// listeners and the connections waiting on them stay.
		return u.m.cfg.Ports.SetState(u.id, portfwd.Hibernated)
	}
	ctx, cancel := context.WithTimeout(ctx, forwardDrain)
	defer cancel()
	return u.m.cfg.Ports.Stop(ctx, u.id)
}

// waitReady waits for the services. A pod with none is running once its
// sandbox is: waiting for init to say "nothing to start" would add its Go
// start-up in gVisor and gate nothing. If init fails later, the sandbox
// exits with it and the watcher fails the pod.
func waitReady(ctx context.Context, u *unit) error {
	if len(u.spec.Services) == 0 && len(u.spec.HealthChecks) == 0 {
		return nil
	}
	return u.m.waitReady(ctx, u.id, u.spec)
}
