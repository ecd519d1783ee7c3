package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/creack/pty"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/pinacle/pinacle-node/imagestore"
	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/pods"
	"github.com/pinacle/pinacle-node/internal/units"
	"github.com/pinacle/pinacle-node/oci"
)

// exitRunFailed is run's exit code when the node itself fails (not the
// process in the sandbox), as docker run uses 125.
const exitRunFailed = 125

type runOptions struct {
	cpus        float64
	memory      string
	storage     string
	pids        int64
	env         []string
	workdir     string
	user        string
	entrypoint  string
	hostname    string
	network     string
	interactive bool
	tty         bool
	keep        bool
	noPull      bool
	timeout     time.Duration
}

func newRunCmd() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run [flags] IMAGE [-- CMD...]",
		Short: "Run a one-off sandbox from an image; its exit code and output pass through",
		Example: `  pinacle-node run docker.io/library/busybox:latest -- echo hello
  pinacle-node run --cpus 0.5 --memory 256M --storage 1G IMAGE -- sh -c 'dd if=/dev/zero of=/x bs=1M'
  pinacle-node run -it IMAGE -- sh`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rest := args[1:]
			if len(rest) > 0 && rest[0] == "--" {
				rest = rest[1:] // with flags not interspersed, pflag keeps the "--"
			}
			code, err := runOnce(cmd, o, args[0], rest)
			if err != nil {
				cli.HandleError(cmd, err)
				return &cli.ExitError{Code: exitRunFailed}
			}
			return &cli.ExitError{Code: code}
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.Float64Var(&o.cpus, "cpus", 0, "CPU quota in CPUs (0.5 = half a CPU); 0: no limit")
	f.StringVar(&o.memory, "memory", "", "memory limit (e.g. 256M, 1G); empty: no limit")
	f.StringVar(&o.storage, "storage", "", "cap on the sandbox's writable layer (e.g. 1G); empty: no cap")
	f.Int64Var(&o.pids, "pids", 0, "pids limit; 0: no limit")
	f.StringArrayVarP(&o.env, "env", "e", nil, "environment KEY=VALUE (repeatable)")
	f.StringVarP(&o.workdir, "workdir", "w", "", "working directory inside the sandbox")
	f.StringVarP(&o.user, "user", "u", "", "user (name, uid, name:group or uid:gid)")
	f.StringVar(&o.entrypoint, "entrypoint", "", "replace the image's entrypoint")
	f.StringVar(&o.hostname, "hostname", "", "hostname inside the sandbox")
	f.StringVar(&o.network, "network", oci.NetworkNone, "network: none (loopback only) or host")
	f.BoolVarP(&o.interactive, "interactive", "i", false, "pass stdin to the process")
	f.BoolVarP(&o.tty, "tty", "t", false, "give the process a terminal")
	f.BoolVar(&o.keep, "keep", false, "keep the sandbox's writable layer afterwards (default: removed)")
	f.BoolVar(&o.noPull, "no-pull", false, "fail instead of pulling an image that is not in the store")
	f.DurationVar(&o.timeout, "timeout", 0, "kill the sandbox after this long; 0: no limit")
	addRegistryFlags(cmd.Flags())
	return cmd
}

func runOnce(cmd *cobra.Command, o runOptions, ref string, args []string) (int, error) {
	ctx := cmd.Context()
	if os.Geteuid() != 0 {
		return 0, fmt.Errorf("run needs root (it mounts a rootfs and starts a sandbox): %w", errdefs.ErrInvalidArgument)
	}
	mem, err := units.ParseBytes("--memory", o.memory)
	if err != nil {
		return 0, err
	}
	storage, err := units.ParseBytes("--storage", o.storage)
	if err != nil {
		return 0, err
	}
	if o.network != oci.NetworkNone && o.network != oci.NetworkHost {
		return 0, fmt.Errorf("--network %q: want none or host: %w", o.network, errdefs.ErrInvalidArgument)
	}
	if o.tty && !term.IsTerminal(int(os.Stdin.Fd())) {
		return 0, fmt.Errorf("-t: stdin is not a terminal: %w", errdefs.ErrInvalidArgument)
	}
	if err := oci.BecomeSubreaper(); err != nil {
		return 0, err
	}
	store, err := openImageStore(cmd)
	if err != nil {
		return 0, err
	}
	dataRoot, _ := cmd.Flags().GetString("data-root")
	rt, err := openRuntime(cmd, oci.WithNetwork(o.network))
	if err != nil {
		return 0, err
	}
	id := "run-" + randHex(6)
	run := oneOffFor(o, id, filepath.Join(dataRoot, "run", id), ref, args, mem, storage)
	run.Attach = func() (oci.CreateOpts, func(), error) { return attachRun(rt, id, o) }
	runner := pods.Runner{
		Images: store, Runtime: rt, NoPull: o.noPull,
		Pulling: func(string) (func(imagestore.Event), func()) { return progressReporter(cmd) },
		Warn:    func(err error) { fmt.Fprintf(cmd.ErrOrStderr(), "pinacle-node: cleanup: %v\n", err) },
	}
	ex, err := runner.Run(ctx, run)
	if err == nil && ex.OOMKilled {
		fmt.Fprintf(cmd.ErrOrStderr(), "pinacle-node: sandbox killed: out of memory (limit %s)\n", o.memory)
	}
	if _, serr := os.Stat(run.Dir); serr == nil && o.keep {
		fmt.Fprintf(cmd.ErrOrStderr(), "kept writable layer in %s\n", run.Dir)
	}
	return ex.Code, err
}

// oneOffFor is the run the flags ask for.
func oneOffFor(o runOptions, id, dir, ref string, args []string, mem, storage int64) pods.OneOff {
	run := pods.OneOff{
		ID:           id,
		Dir:          dir,
		Image:        ref,
		StorageBytes: storage,
		Keep:         o.keep,
		Spec: oci.SpecOptions{
			Args:       args,
			Env:        o.env,
			WorkingDir: o.workdir,
			User:       o.user,
			Hostname:   o.hostname,
			Terminal:   o.tty,
			// Its own top-level cgroup, gone with the sandbox: a shared
			// parent would outlive the run, and removing it could race
			// with the daemon (or another run) creating a child in it.
			CgroupsPath: "/pinacle-run-" + id,
			CPUs:        o.cpus,
			// Boot unthrottled; the quota applies once the process starts.
			DeferCPUQuota: true,
			MemoryBytes:   mem,
			PidsLimit:     o.pids,
			Network:       o.network,
		},
	}
	if o.entrypoint != "" {
		run.Spec.Entrypoint = []string{o.entrypoint}
	}
	if run.Spec.Hostname == "" {
		run.Spec.Hostname = id
	}
	return run
}

// attachRun gives the sandbox its stdio and passes our signals (and the
// --timeout kill) on to it until the returned function is called.
func attachRun(rt oci.Runtime, id string, o runOptions) (oci.CreateOpts, func(), error) {
	copts, restore, err := runStdio(o)
	if err != nil {
		return oci.CreateOpts{}, nil, err
	}
	// Signals go to the sandbox; the process decides what they mean.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		var timeout <-chan time.Time
		if o.timeout > 0 {
			timeout = time.After(o.timeout)
		}
		// Kill failures: the sandbox is already gone, which is the aim.
		for {
			select {
			case s := <-sigs:
				_ = rt.Kill(context.Background(), id, s.(syscall.Signal), true)
			case <-timeout:
				_ = rt.Kill(context.Background(), id, syscall.SIGKILL, true)
			case <-done:
				return
			}
		}
	}()
	return copts, func() {
		close(done)
		signal.Stop(sigs)
		restore()
	}, nil
}

// runStdio picks the sandbox's stdio: ours, or a pty we relay for -t.
func runStdio(o runOptions) (oci.CreateOpts, func(), error) {
	if !o.tty {
		c := oci.CreateOpts{Stdout: os.Stdout, Stderr: os.Stderr}
		if o.interactive {
			c.Stdin = os.Stdin
		}
		return c, func() {}, nil
	}
	ptmx, tty, err := pty.Open()
	if err != nil {
		return oci.CreateOpts{}, nil, err
	}
	_ = pty.InheritSize(os.Stdin, ptmx)
	old, err := term.MakeRaw(int(os.Stdin.Fd()))
	if err != nil {
		ptmx.Close()
		tty.Close()
		return oci.CreateOpts{}, nil, err
	}
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	go func() {
		for range winch {
			_ = pty.InheritSize(os.Stdin, ptmx)
		}
	}()
	if o.interactive {
		go func() { _, _ = io.Copy(ptmx, os.Stdin) }()
	}
	outDone := make(chan struct{})
	go func() { _, _ = io.Copy(os.Stdout, ptmx); close(outDone) }()
	return oci.CreateOpts{Stdin: tty, Stdout: tty, Stderr: tty}, func() {
		tty.Close()
		select {
		case <-outDone:
		case <-time.After(2 * time.Second):
		}
		ptmx.Close()
		signal.Stop(winch)
		close(winch)
		_ = term.Restore(int(os.Stdin.Fd()), old)
	}, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
