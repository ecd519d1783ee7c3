package pods

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/rootfs"
)

// Stop implements Service.
func (m *Manager) Stop(ctx context.Context, idOrName string) (*Pod, error) {
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
	if err := m.bringDown(ctx, id); err != nil {
		return m.fail(ctx, id, err)
	}
	crashpoint("del:down")
	if err := m.cfg.Ports.Release(ctx, id); err != nil {
		return m.fail(ctx, id, fmt.Errorf("ports: %w", err))
	}
	crashpoint("del:ports")
	if err := rootfs.Remove(ctx, m.podDir(id)); err != nil {
		return m.fail(ctx, id, fmt.Errorf("rootfs: %w", err))
	}
	if err := os.RemoveAll(m.podDir(id)); err != nil {
		return m.fail(ctx, id, err)
	}
	m.status.drop(m.statusFile(id))
	crashpoint("del:rootfs")
	if err := m.cfg.Images.RemoveLease(ctx, id); err != nil {
		return m.fail(ctx, id, fmt.Errorf("image lease: %w", err))
	}
	crashpoint("del:lease")
	return m.cfg.Store.DeletePod(ctx, id)
}

// bringDown undoes bringUp: forwarder, sandbox, network, rootfs mount.
// Allocations, the image lease and the pod's files stay (stop keeps them).
func (m *Manager) bringDown(ctx context.Context, id string) error {
	m.unwatch(id)
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_ = m.cfg.Ports.Stop(stopCtx, id)
	cancel()
	crashpoint("down:ports")
	m.stopSandbox(ctx, id)
	crashpoint("down:sandbox")
	var errs []error
	if err := m.cfg.Net.Teardown(ctx, id); err != nil {
		errs = append(errs, fmt.Errorf("network: %w", err))
	}
	crashpoint("down:network")
	if err := rootfs.Unmount(ctx, m.podDir(id)); err != nil {
		errs = append(errs, fmt.Errorf("rootfs: %w", err))
	}
	crashpoint("down:rootfs")
	return errors.Join(errs...)
}

// stopSandbox asks init to stop the services (SIGTERM: it stops them in
// reverse dependency order with their grace periods), then removes the
// sandbox, by force once StopTimeout has passed.
func (m *Manager) stopSandbox(ctx context.Context, id string) {
	if err := m.cfg.Runtime.Kill(ctx, id, syscall.SIGTERM, false); err == nil {
		wctx, cancel := context.WithTimeout(ctx, m.cfg.StopTimeout)
		_, _ = m.cfg.Runtime.Wait(wctx, id)
		cancel()
	}
	m.deleteSandbox(ctx, id)
}

func (m *Manager) deleteSandbox(ctx context.Context, id string) {
	if err := m.cfg.Runtime.Delete(ctx, id, true); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		m.log.Warn("deleting sandbox", "pod", id, "err", err)
	}
}
