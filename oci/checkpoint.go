package oci

// The runsc driver: checkpoint and restore.

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func (r *runsc) Checkpoint(ctx context.Context, id string, o CheckpointOpts) error {
	if !filepath.IsAbs(o.ImagePath) {
		return fmt.Errorf("checkpoint %s: image path %q: must be absolute: %w", id, o.ImagePath, errdefs.ErrInvalidArgument)
	}
	ci, _, err := r.lookup(ctx, id)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", id, err)
	}
	args := []string{"checkpoint", "--image-path=" + o.ImagePath}
	if o.LeaveRunning {
		args = append(args, "--leave-running")
	}
	if o.Compress {
		args = append(args, "--compression=flate-best-speed")
	}
	args = append(args, id)
	if _, _, err := r.run(ctx, call{id: id, args: args}); err != nil {
		return fmt.Errorf("checkpoint %s: %w", id, err)
	}
	if !o.LeaveRunning {
		// The sandbox exits after a checkpoint; reap it now (design.md: it
		// otherwise lingers as a zombie).
		ci.mu.Lock()
		pids := ci.pids
		ci.exit = &ExitInfo{}
		ci.mu.Unlock()
		theReaper.reapAll(pids, 5*time.Second)
		theReaper.forget(pids)
	}
	return nil
}

func (r *runsc) Restore(ctx context.Context, id, bundle string, o RestoreOpts) error {
	if err := errdefs.ValidateID("container", id); err != nil {
		return err
	}
	if !filepath.IsAbs(o.ImagePath) {
		return fmt.Errorf("restore %s: image path %q: must be absolute: %w", id, o.ImagePath, errdefs.ErrInvalidArgument)
	}
	spec, err := ReadSpec(bundle)
	if err != nil {
		return fmt.Errorf("restore %s: %w", id, err)
	}
	c := stdioCall(o.CreateOpts)
	c.id = id
	if c.global, err = r.networkFlag(o.Network); err != nil {
		return err
	}
	pidFile, cleanup, err := ensurePidFile(&o.CreateOpts)
	if err != nil {
		return err
	}
	defer cleanup()
	c.args = append([]string{"restore", "--bundle=" + bundle, "--image-path=" + o.ImagePath, "--detach"}, createFlags(o.CreateOpts)...)
	c.args = append(c.args, id)
	if _, _, err := r.run(ctx, c); err != nil {
		return fmt.Errorf("restore %s: %w", id, err)
	}
	r.adopted(ctx, id, bundle, spec, pidFile)
	// The restored sandbox runs at once: it gets the quota a start would.
	if err := applyDeferredCPUQuota(spec); err != nil {
		return fmt.Errorf("restore %s: %w", id, err)
	}
	return nil
}
