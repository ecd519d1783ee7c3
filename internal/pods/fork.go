package pods

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/fileutil"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/podspec"
)

// Fork implements api.Service: a new pod from a running one. The source
// is captured while it runs on (captureSteps: a checkpoint that leaves
// it running, a copy of its writable layer and run directory) into the
// new pod's seed; the new pod then provisions as any pod does, with its
// own ID, network, address and host ports, and restores the seed
// instead of booting. Both run on and diverge.
func (m *Manager) Fork(ctx context.Context, idOrName string, req api.ForkRequest) (*api.Pod, error) {
	if req.Name == "" {
		return nil, fmt.Errorf("name: the new pod's name is required: %w", errdefs.ErrInvalidArgument)
	}
	if err := errdefs.ValidateID("pod name", req.Name); err != nil {
		return nil, err
	}
	src, err := m.find(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	id, err := m.forkRecord(ctx, src, req.Name)
	if err != nil {
		return nil, err
	}
	m.event(ctx, src.ID, "fork", "Forked", fmt.Sprintf("forked into %s (%s)", req.Name, id))
	done := m.background(id, func(ctx context.Context) error { return m.provision(ctx, id) })
	return m.maybeWait(ctx, id, req.Wait, done)
}

// forkRecord records the new pod (pending, pinned to the source's image)
// and captures the source into its seed under the source's lock. On
// failure nothing of the new pod is left.
func (m *Manager) forkRecord(ctx context.Context, src *store.Pod, name string) (string, error) {
	spec, err := decodeSpec(src)
	if err != nil {
		return "", err
	}
	spec.ID, spec.Name, spec.Slug = newID(), name, ""
	if podspec.IsDNSLabel(name) {
		spec.Slug = name // the hostname, as podspec.Default would
	}
	// Host ports and the subnet are the source's; the fork gets its own.
	spec.Network.Subnet = ""
	for i := range spec.Network.Ports {
		spec.Network.Ports[i].External = 0
	}
	if err := spec.Validate(); err != nil {
		return "", err
	}
	sst := m.statusOf(ctx, src)
	sb, err := json.Marshal(spec)
	if err != nil {
		return "", err
	}
	stb, err := json.Marshal(podStatus{Image: sst.Image, ImageDigest: sst.ImageDigest})
	if err != nil {
		return "", err
	}
	unlock := m.lock(src.ID)
	defer unlock()
	p, err := m.cfg.Store.CreatePod(ctx, store.Pod{ID: spec.ID, Name: name, Spec: sb, Status: stb})
	if err != nil {
		return "", err
	}
	seed := m.forkSeedDir(p.ID)
	err = m.captureRunning(ctx, src.ID, func(part string) string { return filepath.Join(seed, part) })
	if err == nil {
		err = fileutil.WriteAtomic(filepath.Join(seed, forkSeedMark), []byte(`{"source":"`+src.ID+`"}`), 0o600)
	}
	if err != nil {
		if rerr := os.RemoveAll(m.podDir(p.ID)); rerr != nil {
			m.log.Warn("removing a failed fork's files", "pod", p.ID, "err", rerr)
		}
		if derr := m.cfg.Store.DeletePod(context.WithoutCancel(ctx), p.ID); derr != nil {
			m.log.Warn("removing a failed fork's record", "pod", p.ID, "err", derr)
		}
		return "", fmt.Errorf("fork of pod %s: %w", src.ID, err)
	}
	return p.ID, nil
}
