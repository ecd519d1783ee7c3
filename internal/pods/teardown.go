package pods

import (
	"context"
	"errors"
	"fmt"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/oci"
)

// Stop implements Service.
func (m *Manager) Stop(ctx context.Context, idOrName string) (*api.Pod, error) {
	p, err := m.find(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	done := m.background(p.ID, func(ctx context.Context) error {
		dec, p, err := m.cfg.Store.ApplyOp(ctx, p.ID, lifecycle.OpStop, "")
		if err != nil {
			return err
		}
		switch dec.Action {
		case lifecycle.NoOp:
			return nil
		case lifecycle.Await:
			return fmt.Errorf("pod %s is %s: %w", p.ID, p.State, errdefs.ErrConflict)
		}
		if err := m.bringDown(ctx, p.ID); err != nil {
			return m.fail(ctx, p.ID, err)
		}
		_, err = m.cfg.Store.Transition(ctx, p.ID, lifecycle.Stopped, "")
		return err
	})
	return m.maybeWait(ctx, p.ID, true, done)
}

// Delete implements Service.
func (m *Manager) Delete(ctx context.Context, idOrName string) error {
	p, err := m.find(ctx, idOrName)
	if err != nil {
		return err
	}
	done := m.background(p.ID, func(ctx context.Context) error {
		dec, p, err := m.cfg.Store.ApplyOp(ctx, p.ID, lifecycle.OpDelete, "")
		if err != nil {
			return err
		}
		if dec.Action == lifecycle.Await && p.State != lifecycle.Terminating {
			return fmt.Errorf("pod %s is %s: %w", p.ID, p.State, errdefs.ErrConflict)
		}
		return m.terminate(ctx, p.ID)
	})
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// terminate frees everything the pod holds and removes its record. Every
// step tolerates what is already gone, so it also finishes a delete that
// a crash interrupted.
func (m *Manager) terminate(ctx context.Context, id string) error {
	// Links first: access through the gateway ends before anything else.
	if err := m.revokeLinks(id); err != nil {
		return m.fail(ctx, id, err)
	}
	if err := m.bringDown(ctx, id); err != nil {
		return m.fail(ctx, id, err)
	}
	crashpoint("del:down")
	if err := podSteps.release(ctx, m.unitFor(id)); err != nil {
		return m.fail(ctx, id, err)
	}
	m.execs.forget(id)
	return m.cfg.Store.DeletePod(ctx, id)
}

// bringDown undoes bringUp: forwarder, sandbox, rootfs mount, network.
// Allocations, the image lease and the pod's files stay (stop keeps them).
func (m *Manager) bringDown(ctx context.Context, id string) error {
	m.unwatch(id)
	u := m.unitFor(id)
	u.graceful = true
	return podSteps.down(ctx, u)
}

// deleteSandbox removes the sandbox; one that is not there is success.
func (m *Manager) deleteSandbox(ctx context.Context, id string) error {
	err := m.cfg.Runtime.Delete(ctx, id, true)
	if !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	// runsc removes the cgroup of a container it knows. One whose create
	// was cut short before runsc recorded it can leave a sandbox and gofer
	// that only their command lines name, and its cgroup: both go here.
	if err := m.cfg.Runtime.KillStale(ctx, id); err != nil {
		return err
	}
	if err := oci.RemoveCgroup(m.cgroupsPath(id)); err != nil {
		// Not fatal to the pod's operation: what is left under the parent
		// goes with `pinacle-node cleanup`.
		m.log.Warn("removing the cgroup of an unrecorded sandbox", "pod", id, "err", err)
	}
	return nil
}
