package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/pinacle/pinacle-node/imagestore"
	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/internal/node"
	"github.com/pinacle/pinacle-node/internal/nodeconfig"
	"github.com/pinacle/pinacle-node/internal/render"
)

func newImageCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Manage images"}
	cmd.PersistentFlags().String("config", nodeconfig.DefaultPath, "node configuration file (its registry: section applies)")
	addRegistryFlags(cmd.PersistentFlags())
	cmd.AddCommand(newImagePullCmd(), newImageImportCmd(), newImageLsCmd(), newImageRmCmd(), newImageGCCmd(), newImageInspectCmd())
	return cmd
}

// openImageStore opens the data root's image store with the registry
// settings of node.yaml, to which the flags and env add (registryflags.go).
func openImageStore(cmd *cobra.Command) (imagestore.Store, error) {
	cfg, err := loadNodeConfig(cmd)
	if err != nil {
		return nil, err
	}
	if err := applyRegistryFlags(cmd, cfg); err != nil {
		return nil, err
	}
	jobs, _ := cmd.Flags().GetInt("jobs")
	return node.OpenImages(cmd.Context(), cfg, imagestore.WithJobs(jobs))
}

// progressReporter draws one bar for the whole pull on a terminal, and
// plain lines per layer phase otherwise (logs, the macOS CLI over limactl).
func progressReporter(cmd *cobra.Command) (func(imagestore.Event), func()) {
	errw := cmd.ErrOrStderr()
	f, isFile := errw.(*os.File)
	format, _ := cli.OutputFormat(cmd)
	if isFile && term.IsTerminal(int(f.Fd())) && format == cli.Table {
		var mu sync.Mutex
		totals, done := map[string]int64{}, map[string]int64{}
		bar := progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(errw), progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription("resolving"), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(), progressbar.OptionSetWidth(30))
		return func(e imagestore.Event) {
				mu.Lock()
				defer mu.Unlock()
				if e.Layer == "" {
					return
				}
				if e.Total > 0 {
					totals[e.Layer] = e.Total
				}
				done[e.Layer] = e.Done
				var t, d int64
				for k, v := range totals {
					t += v
					d += done[k]
				}
				n := 0
				for k := range totals {
					if done[k] >= totals[k] {
						n++
					}
				}
				bar.ChangeMax64(t)
				bar.Describe(fmt.Sprintf("layers %d/%d", n, len(totals)))
				_ = bar.Set64(d)
			}, func() {
				_ = bar.Finish()
			}
	}
	return func(e imagestore.Event) {
		if e.Phase == imagestore.PhaseDownloading && e.Done > 0 {
			return // one line per phase, not per megabyte
		}
		layer := e.Layer
		if len(layer) > 19 {
			layer = layer[7:19]
		}
		if layer == "" {
			fmt.Fprintf(errw, "%s: %s\n", e.Ref, e.Phase)
			return
		}
		fmt.Fprintf(errw, "%s: layer %s %s %s\n", e.Ref, layer, e.Phase, render.Bytes(e.Total))
	}, func() {}
}

func newImagePullCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pull REF",
		Short: "Pull an image from a registry and unpack its layers",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openImageStore(cmd)
			if err != nil {
				return err
			}
			fn, finish := progressReporter(cmd)
			img, err := s.Pull(cmd.Context(), args[0], imagestore.WithProgress(fn))
			finish()
			if err != nil {
				return err
			}
			return cli.Print(cmd, img, func(w io.Writer) {
				fmt.Fprintf(w, "%s\t%s\t%s\n", strings.Join(img.Refs, ","), img.Digest, render.Bytes(img.Size))
			})
		},
	}
}

func newImageImportCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "import FILE|DIR",
		Short: "Import images from a docker save tarball or an OCI layout (directory or tar)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openImageStore(cmd)
			if err != nil {
				return err
			}
			var opts []imagestore.PullOption
			if ref, _ := cmd.Flags().GetString("ref"); ref != "" {
				opts = append(opts, imagestore.WithRef(ref))
			}
			fn, finish := progressReporter(cmd)
			imgs, err := s.Import(cmd.Context(), args[0], append(opts, imagestore.WithProgress(fn))...)
			finish()
			if err != nil {
				return err
			}
			return cli.Print(cmd, imgs, func(w io.Writer) { imageTable(w, imgs) })
		},
	}
	c.Flags().String("ref", "", "name for images the source leaves untagged (a bare tag from the source replaces its tag)")
	return c
}

func imageTable(w io.Writer, imgs []*imagestore.Image) {
	fmt.Fprintln(w, "REF\tID\tSIZE\tCREATED")
	for _, img := range imgs {
		refs := img.Refs
		if len(refs) == 0 {
			refs = []string{"<none>"}
		}
		for _, r := range refs {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r, img.ShortID(), render.Bytes(img.Size), ago(img.Created))
		}
	}
}

func newImageLsCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List images",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openImageStore(cmd)
			if err != nil {
				return err
			}
			imgs, err := s.List(cmd.Context())
			if err != nil {
				return err
			}
			if imgs == nil {
				imgs = []*imagestore.Image{}
			}
			return cli.Print(cmd, imgs, func(w io.Writer) { imageTable(w, imgs) })
		},
	}
}

func newImageRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm REF...",
		Short: "Remove image references (content goes at the next gc)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openImageStore(cmd)
			if err != nil {
				return err
			}
			removed := []string{}
			for _, ref := range args {
				r, err := s.Remove(cmd.Context(), ref)
				if err != nil {
					return err
				}
				removed = append(removed, r...)
			}
			return cli.Print(cmd, map[string][]string{"removed": removed}, func(w io.Writer) {
				for _, r := range removed {
					fmt.Fprintf(w, "removed %s\n", r)
				}
			})
		},
	}
}

func newImageGCCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "gc",
		Short: "Delete blobs and layers no image and no pod lease references",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openImageStore(cmd)
			if err != nil {
				return err
			}
			res, err := s.GC(cmd.Context())
			if err != nil {
				return err
			}
			return cli.Print(cmd, res, func(w io.Writer) {
				for _, l := range res.Layers {
					fmt.Fprintf(w, "deleted layer %s\n", l)
				}
				for _, b := range res.Blobs {
					fmt.Fprintf(w, "deleted blob %s\n", b)
				}
				fmt.Fprintf(w, "freed %s (%d layers, %d blobs)\n", render.Bytes(res.Bytes), len(res.Layers), len(res.Blobs))
			})
		},
	}
}

func newImageInspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect REF",
		Short: "Show an image: refs, layers, config and layer directories",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openImageStore(cmd)
			if err != nil {
				return err
			}
			rfs, err := s.RootFS(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return cli.Print(cmd, rfs, func(w io.Writer) {
				img := rfs.Image
				fmt.Fprintf(w, "Refs:\t%s\n", strings.Join(img.Refs, ", "))
				fmt.Fprintf(w, "Digest:\t%s\n", img.Digest)
				fmt.Fprintf(w, "ID:\t%s\n", img.ID)
				fmt.Fprintf(w, "Platform:\t%s\n", img.Platform)
				fmt.Fprintf(w, "Created:\t%s\n", img.Created.Format(time.RFC3339))
				fmt.Fprintf(w, "Size:\t%s (compressed %s)\n", render.Bytes(img.Size), render.Bytes(img.CompressedSize))
				c := rfs.Config.Config
				fmt.Fprintf(w, "Entrypoint:\t%q\n", c.Entrypoint)
				fmt.Fprintf(w, "Cmd:\t%q\n", c.Cmd)
				fmt.Fprintf(w, "User:\t%s\n", c.User)
				fmt.Fprintf(w, "WorkingDir:\t%s\n", c.WorkingDir)
				for _, e := range c.Env {
					fmt.Fprintf(w, "Env:\t%s\n", e)
				}
				for i, l := range img.Layers {
					fmt.Fprintf(w, "Layer %d:\t%s\t%s\t%s\n", i, l.Digest, render.Bytes(l.Unpacked), rfs.LayerDirs[i])
				}
			})
		},
	}
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d minutes ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}
