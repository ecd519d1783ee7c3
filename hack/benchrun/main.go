// Command benchrun measures `pinacle-node run IMAGE true` with a cached
// image, beside runsc create+start+wait+delete of the same bundle alone.
//
//	go run ./hack/benchrun -bin bin/pinacle-node -n 20
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/v1"

	"github.com/pinacle/pinacle-node/imagestore"
	"github.com/pinacle/pinacle-node/internal/testimage"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/rootfs"
)

func main() {
	bin := flag.String("bin", "bin/pinacle-node", "pinacle-node binary")
	n := flag.Int("n", 20, "runs per figure")
	flag.Parse()
	if err := run(*bin, *n); err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(1)
	}
}

func run(bin string, n int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "pinacle-benchrun-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	data, runscRoot := filepath.Join(dir, "data"), filepath.Join(dir, "runsc")
	defer oci.ReleaseRoot(runscRoot)
	img, err := testimage.Busybox()
	if err != nil {
		return err
	}
	const ref = "pinacle.local/busybox:latest"
	layout := filepath.Join(dir, "layout")
	if err := testimage.WriteOCILayout(layout, map[string]v1.Image{ref: img}); err != nil {
		return err
	}
	env := append(os.Environ(), "PINACLE_DATA_ROOT="+data, "PINACLE_RUNSC_ROOT="+runscRoot)
	imp := exec.Command(bin, "image", "import", layout)
	imp.Env = env
	if out, err := imp.CombinedOutput(); err != nil {
		return fmt.Errorf("import: %v: %s", err, out)
	}

	// 1. The whole command, as a user runs it.
	var whole []time.Duration
	for i := 0; i < n; i++ {
		c := exec.Command(bin, "run", "--no-pull", ref, "--", "true")
		c.Env = env
		t0 := time.Now()
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("run: %v: %s", err, out)
		}
		whole = append(whole, time.Since(t0))
	}

	// 2. runsc alone on a prepared bundle: create+start, and the full cycle.
	if err := oci.BecomeSubreaper(); err != nil {
		return err
	}
	store, err := imagestore.New(ctx, data)
	if err != nil {
		return err
	}
	image, err := store.RootFS(ctx, ref)
	if err != nil {
		return err
	}
	podDir := filepath.Join(dir, "pod")
	r, err := rootfs.Mount(ctx, image.LayerDirs, podDir, rootfs.Options{})
	if err != nil {
		return err
	}
	defer rootfs.Remove(context.Background(), podDir)
	bundle := filepath.Join(podDir, "bundle")
	if _, err := oci.NewBundle(bundle, oci.SpecOptions{Args: []string{"/bin/true"}, RootPath: r.Path, Network: oci.NetworkNone, CgroupsPath: "/pinacle-benchrun"}); err != nil {
		return err
	}
	rt, err := oci.New(oci.WithRoot(runscRoot), oci.WithNetwork(oci.NetworkNone))
	if err != nil {
		return err
	}
	var createStart, cycle []time.Duration
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("benchrun-%d", i)
		t0 := time.Now()
		if err := rt.Create(ctx, id, bundle, oci.CreateOpts{}); err != nil {
			return err
		}
		if err := rt.Start(ctx, id); err != nil {
			return err
		}
		createStart = append(createStart, time.Since(t0))
		if _, err := rt.Wait(ctx, id); err != nil {
			return err
		}
		if err := rt.Delete(ctx, id, true); err != nil {
			return err
		}
		cycle = append(cycle, time.Since(t0))
	}
	// 3. runsc run --detach (create and start in one call, as pods and
	// `run` use it): the floor for create -> running.
	var detached []time.Duration
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("benchrun-d%d", i)
		t0 := time.Now()
		if err := rt.Create(ctx, id, bundle, oci.CreateOpts{Start: true}); err != nil {
			return err
		}
		detached = append(detached, time.Since(t0))
		if _, err := rt.Wait(ctx, id); err != nil {
			return err
		}
		if err := rt.Delete(ctx, id, true); err != nil {
			return err
		}
	}
	fmt.Printf("run-bench: pinacle-node run IMAGE true (cached image): p50 %s p90 %s (n=%d)\n", pct(whole, 50), pct(whole, 90), n)
	fmt.Printf("run-bench: runsc run --detach alone (one call):       p50 %s p90 %s\n", pct(detached, 50), pct(detached, 90))
	fmt.Printf("run-bench: runsc create+start alone:                  p50 %s p90 %s\n", pct(createStart, 50), pct(createStart, 90))
	fmt.Printf("run-bench: runsc create+start+wait+delete alone:      p50 %s p90 %s\n", pct(cycle, 50), pct(cycle, 90))
	return nil
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100].Round(100 * time.Microsecond)
}
