package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/hostcli"
)

// newVMCmd is `pinacle vm`: the Lima VM that runs the node, through limactl.
func newVMCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vm",
		Short: "Create, start, stop, delete and show the Lima VM that runs the node",
	}
	cmd.AddCommand(newVMCreateCmd(false), newVMCreateCmd(true), newVMStartCmd(), newVMStopCmd(), newVMDeleteCmd(), newVMStatusCmd())
	return cmd
}

func vmName(cmd *cobra.Command) string {
	n, _ := cmd.Flags().GetString(hostcli.FlagVM)
	return n
}

// lookup returns the VM's instance, or ErrNotFound.
func lookup(cmd *cobra.Command, lima hostcli.Lima) (*hostcli.Instance, error) {
	insts, err := lima.List(cmd.Context())
	if err != nil {
		return nil, err
	}
	return hostcli.Find(insts, vmName(cmd))
}

// newVMCreateCmd is `vm create` or, with up, `vm up` (create if missing, then start).
func newVMCreateCmd(up bool) *cobra.Command {
	var (
		template, repo, runsc string
		cpus                  int
		memory, disk          float64
	)
	use, short := "create", "Create the VM from lima.yaml (does not start it; see vm up)"
	if up {
		use, short = "up", "Create the VM if it does not exist, then start it"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `.

The VM mounts this repository (the directory of --template, or --repo)
read-only and installs bin/pinacle-{node,init}-linux-<arch> from it at every
boot: run 'make cross' first (make vm-up does both). limactl's progress
(the image download) shows as it happens; a create that fails removes
the half-made VM, so running the command again retries.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lima, err := hostcli.NewLimactl()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			name := vmName(cmd)
			inst, err := lookup(cmd, lima)
			switch {
			case err == nil && !up:
				return fmt.Errorf("VM %q (%s): %w (pinacle vm delete removes it)", name, inst.Status, errdefs.ErrAlreadyExists)
			case err == nil && inst.Status == "Broken":
				return fmt.Errorf("VM %q is broken (%s): remove it with pinacle vm delete --force, then run pinacle vm up again: %w", name, inst.Message, errdefs.ErrConflict)
			case err != nil && !errdefs.IsNotFound(err):
				return err
			case err != nil:
				opts, err := createOptions(name, template, repo, runsc, cpus, memory, disk)
				if err != nil {
					return err
				}
				if missing := missingNodeBinaries(opts.repo); len(missing) > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v not built; the VM will not start the node until 'make cross' builds it\n", missing)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "creating VM %s from %s (mounting %s); the first VM downloads its image\n", name, opts.Template, opts.repo)
				if err := lima.Create(ctx, opts.CreateOptions); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "created VM %s\n", name)
			}
			if !up {
				return nil
			}
			if inst != nil && inst.Status == "Running" {
				fmt.Fprintf(cmd.ErrOrStderr(), "VM %s is running\n", name)
				return nil
			}
			if err := lima.Start(ctx, name); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "VM %s is running\n", name)
			return nil
		},
	}
	cmd.Flags().StringVar(&template, "template", "lima.yaml", "Lima template (this repository's lima.yaml)")
	cmd.Flags().StringVar(&repo, "repo", "", "repository to mount in the VM, with the node binaries in bin/ (default: the template's directory)")
	cmd.Flags().StringVar(&runsc, "runsc-release", "", "gVisor release for the VM's runsc, YYYYMMDD.N (default: the template's pinned release)")
	cmd.Flags().IntVar(&cpus, "cpus", 0, "CPUs (default: the template's, 4)")
	cmd.Flags().Float64Var(&memory, "memory", 0, "memory in GiB (default: the template's, 8)")
	cmd.Flags().Float64Var(&disk, "disk", 0, "disk in GiB (default: the template's, 100)")
	return cmd
}

// runscReleaseRE is a gVisor release as lima.yaml's provisioning accepts it.
var runscReleaseRE = regexp.MustCompile(`^([0-9]{8}(\.[0-9]+)?|latest)$`)

// vmCreate is what vm create passes to limactl, and the repository it mounts.
type vmCreate struct {
	hostcli.CreateOptions
	repo string
}

// createOptions resolves the template and repository paths (absolute: the
// VM mounts the repository by its host path).
func createOptions(name, template, repo, runsc string, cpus int, memory, disk float64) (vmCreate, error) {
	tmpl, err := filepath.Abs(template)
	if err != nil {
		return vmCreate{}, err
	}
	if _, err := os.Stat(tmpl); err != nil {
		return vmCreate{}, fmt.Errorf("template %s: %w (run from the repository, or pass --template)", template, errdefs.ErrNotFound)
	}
	if repo == "" {
		repo = filepath.Dir(tmpl)
	}
	if repo, err = filepath.Abs(repo); err != nil {
		return vmCreate{}, err
	}
	if st, err := os.Stat(repo); err != nil || !st.IsDir() {
		return vmCreate{}, fmt.Errorf("--repo %s: not a directory: %w", repo, errdefs.ErrNotFound)
	}
	if cpus < 0 || memory < 0 || disk < 0 {
		return vmCreate{}, fmt.Errorf("--cpus, --memory and --disk must not be negative: %w", errdefs.ErrInvalidArgument)
	}
	// The values go to lima.yaml's params; its provisioning reads them as
	// $PARAM_* data.
	set := []string{".param.PinacleRepo = " + strconv.Quote(repo)}
	if runsc != "" {
		if !runscReleaseRE.MatchString(runsc) {
			return vmCreate{}, fmt.Errorf("--runsc-release %q: want a gVisor release such as 20260817.0: %w", runsc, errdefs.ErrInvalidArgument)
		}
		set = append(set, ".param.RunscRelease = "+strconv.Quote(runsc))
	}
	return vmCreate{CreateOptions: hostcli.CreateOptions{
		Name:      name,
		Template:  tmpl,
		Set:       set,
		CPUs:      cpus,
		MemoryGiB: memory,
		DiskGiB:   disk,
	}, repo: repo}, nil
}

// missingNodeBinaries lists the cross-built binaries the VM looks for in
// the repository it mounts (the node and pods' init) that are not there,
// unless one architecture, the VM's, has both.
func missingNodeBinaries(repo string) []string {
	var missing []string
	for _, a := range []string{"arm64", "amd64"} {
		var gone []string
		for _, c := range []string{"node", "init"} {
			p := filepath.Join(repo, "bin", "pinacle-"+c+"-linux-"+a)
			if _, err := os.Stat(p); err != nil {
				gone = append(gone, p)
			}
		}
		if len(gone) == 0 {
			return nil
		}
		missing = append(missing, gone...)
	}
	return missing
}

func newVMStartCmd() *cobra.Command {
	return newVMInstanceCmd("start", "Start the VM (boots, provisions, waits until the node serves)",
		func(cmd *cobra.Command, lima hostcli.Lima, inst *hostcli.Instance) error {
			if inst.Status == "Running" {
				return nil
			}
			return lima.Start(cmd.Context(), inst.Name)
		})
}

func newVMStopCmd() *cobra.Command {
	return newVMInstanceCmd("stop", "Stop the VM; running pods are hibernated first and wake on their first connection after the next start",
		func(cmd *cobra.Command, lima hostcli.Lima, inst *hostcli.Instance) error {
			if inst.Status == "Stopped" {
				return nil
			}
			// The node's shutdown unit drains too; doing it here first
			// keeps it clear of limactl's stop timeout.
			node := &hostcli.Node{Lima: lima, VM: inst.Name}
			if _, err := node.RunJSON(cmd.Context(), []string{"drain", "--hibernate"}, nil); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: hibernating the pods: %v (the VM's shutdown tries again)\n", err)
			}
			return lima.Stop(cmd.Context(), inst.Name)
		})
}

// newVMInstanceCmd is a vm subcommand that acts on the existing VM.
func newVMInstanceCmd(use, short string, act func(*cobra.Command, hostcli.Lima, *hostcli.Instance) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lima, err := hostcli.NewLimactl()
			if err != nil {
				return err
			}
			inst, err := lookup(cmd, lima)
			if err != nil {
				return err
			}
			return act(cmd, lima, inst)
		},
	}
}

func newVMDeleteCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete the VM and everything in it (pods, images)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lima, err := hostcli.NewLimactl()
			if err != nil {
				return err
			}
			inst, err := lookup(cmd, lima)
			if err != nil {
				return err
			}
			return lima.Delete(cmd.Context(), inst.Name, force)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "delete a running VM")
	return cmd
}

func newVMStatusCmd() *cobra.Command {
	return newVMInstanceCmd("status", "Show the VM: status, architecture, resources",
		func(cmd *cobra.Command, _ hostcli.Lima, inst *hostcli.Instance) error {
			return cli.Print(cmd, inst, func(w io.Writer) { _ = hostcli.RenderInstance(w, inst) })
		})
}
