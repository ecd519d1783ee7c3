package pods

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pinacle/pinacle-node/imagestore"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/rootfs"
)

// Runner runs one-off sandboxes (`pinacle-node run`) with the steps a pod
// comes up with (files, image, rootfs, bundle, sandbox), minus a pod's
// network, ports, services and record.
type Runner struct {
	Images  imagestore.Store
	Runtime oci.Runtime
	// Rootfs mounts the sandbox's root (default: rootfs.Host()).
	Rootfs rootfs.Manager
	// NoPull fails instead of pulling an image that is not in the store.
	NoPull bool
	// Pulling, when set, is called as a pull begins: it returns what sees
	// the pull's progress and what is called when the pull ends.
	Pulling func(ref string) (progress func(imagestore.Event), done func())
	// Warn, when set, hears of cleanup failures, which do not change the
	// outcome of the run.
	Warn func(error)
}

// OneOff is one run.
type OneOff struct {
	ID    string // the sandbox's ID and the image lease's holder
	Dir   string // holds the rootfs, the writable layer and the bundle
	Image string
	// StorageBytes caps the writable layer (0: uncapped).
	StorageBytes int64
	// Spec is the sandbox's runtime spec; the runner sets RootPath.
	Spec oci.SpecOptions
	// Keep leaves the writable layer in Dir.
	Keep bool
	// Attach, when set, is called just before the sandbox starts: it
	// returns the sandbox's stdio and a function called once the sandbox
	// is gone (after its delete, so a pty relay sees its end).
	Attach func() (oci.CreateOpts, func(), error)
}

// oneOff is a run as its steps see it.
type oneOff struct {
	base
	run     OneOff
	runtime oci.Runtime
	detach  func()
	exit    oci.ExitInfo
}

var runSteps = steps[*oneOff]{list: []step[*oneOff]{
	{name: "files", do: makeRunDir, release: removeRunDir},
	imageStep[*oneOff](),
	rootfsStep[*oneOff](),
	{name: "bundle", do: writeRunBundle},
	// Run returns once the process has exited; a failed one can leave
	// the sandbox behind (partial).
	{name: "sandbox", do: runSandbox, undo: deleteRunSandbox, partial: true},
}}

// Run runs the sandbox to its end and returns how its process exited.
// Everything the run made is undone and released whatever happens,
// except the writable layer with Keep.
func (r *Runner) Run(ctx context.Context, o OneOff) (oci.ExitInfo, error) {
	rfs := r.Rootfs
	if rfs == nil {
		rfs = rootfs.Host()
	}
	u := &oneOff{
		base: base{
			id: o.ID, dir: o.Dir, images: r.Images, rootfs: rfs,
			ref: o.Image, noPull: r.NoPull, pulling: r.Pulling,
			ropts: rootfs.Options{StorageBytes: o.StorageBytes}, keep: o.Keep,
		},
		run: o, runtime: r.Runtime, detach: func() {},
	}
	err := runSteps.up(ctx, u, &timing{}, r.warn)
	// Cleanup outlives a cancelled run, as the sandbox itself does.
	cctx := context.WithoutCancel(ctx)
	if err == nil {
		// A failure's undos ran in up; a success's run here.
		r.warn("", runSteps.down(cctx, u))
	}
	u.detach()
	r.warn("", runSteps.release(cctx, u))
	return u.exit, err
}

func (r *Runner) warn(step string, err error) {
	if err == nil || r.Warn == nil {
		return
	}
	if step != "" {
		err = fmt.Errorf("undo %s: %w", step, err)
	}
	r.Warn(err)
}

func makeRunDir(_ context.Context, u *oneOff) error { return os.MkdirAll(u.dir, 0o700) }

func removeRunDir(_ context.Context, u *oneOff) error {
	if u.keep {
		return nil
	}
	return os.RemoveAll(u.dir)
}

func (u *oneOff) bundle() string { return filepath.Join(u.dir, "bundle") }

func writeRunBundle(_ context.Context, u *oneOff) error {
	so := u.run.Spec
	so.Image = u.img.Config.Config
	so.RootPath = u.rfs.Path
	_, err := oci.NewBundle(u.bundle(), so)
	return err
}

func runSandbox(ctx context.Context, u *oneOff) error {
	var copts oci.CreateOpts
	if u.run.Attach != nil {
		c, detach, err := u.run.Attach()
		if err != nil {
			return err
		}
		copts, u.detach = c, detach
	}
	// The sandbox runs to its own end: signals reach it through Attach's
	// owner, never through a cancelled context.
	ex, err := u.runtime.Run(context.WithoutCancel(ctx), u.id, u.bundle(), copts)
	u.exit = ex
	return err
}

func deleteRunSandbox(ctx context.Context, u *oneOff) error {
	if err := u.runtime.Delete(ctx, u.id, true); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	return nil
}
