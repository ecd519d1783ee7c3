package oci

// The runsc driver: create, start and run a container.

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func stdioCall(o CreateOpts) call {
	return call{stdin: o.Stdin, stdout: o.Stdout, stderr: o.Stderr}
}

func (r *runsc) Create(ctx context.Context, id, bundle string, o CreateOpts) error {
	if err := errdefs.ValidateID("container", id); err != nil {
		return err
	}
	spec, err := ReadSpec(bundle)
	if err != nil {
		return fmt.Errorf("create %s: %w", id, err)
	}
	c := stdioCall(o)
	c.id = id
	if c.global, err = r.networkFlag(o.Network); err != nil {
		return err
	}
	pidFile, cleanup, err := ensurePidFile(&o)
	if err != nil {
		return err
	}
	defer cleanup()
	c.args = []string{"create", "--bundle=" + bundle}
	if o.Start {
		c.args = []string{"run", "--detach", "--bundle=" + bundle}
	}
	c.args = append(c.args, createFlags(o)...)
	c.args = append(c.args, id)
	if _, _, err := r.run(ctx, c); err != nil {
		return fmt.Errorf("create %s: %w", id, err)
	}
	r.adopted(ctx, id, bundle, spec, pidFile)
	if o.Start {
		if err := applyDeferredCPUQuota(spec); err != nil {
			return fmt.Errorf("create %s: %w", id, err)
		}
	}
	return nil
}

// ensurePidFile makes sure runsc writes the sandbox pid somewhere we can
// read it: cheaper than asking `runsc state` after every create.
func ensurePidFile(o *CreateOpts) (string, func(), error) {
	if o.PidFile != "" {
		return o.PidFile, func() {}, nil
	}
	f, err := os.CreateTemp("", "runsc-pid-*")
	if err != nil {
		return "", nil, err
	}
	f.Close()
	// runsc refuses to overwrite an existing pid file.
	os.Remove(f.Name())
	o.PidFile = f.Name()
	return f.Name(), func() { os.Remove(f.Name()) }, nil
}

func (r *runsc) networkFlag(mode string) ([]string, error) {
	if mode == "" {
		return nil, nil
	}
	if err := validNetwork(mode); err != nil {
		return nil, err
	}
	return []string{"--network=" + mode}, nil
}

func createFlags(o CreateOpts) []string {
	var f []string
	if o.ConsoleSocket != "" {
		f = append(f, "--console-socket="+o.ConsoleSocket)
	}
	if o.PidFile != "" {
		f = append(f, "--pid-file="+o.PidFile)
	}
	return f
}

// adopted records a freshly created or restored sandbox: its cgroup and
// pid, and tracks the processes runsc left to us.
func (r *runsc) adopted(ctx context.Context, id, bundle string, spec *specs.Spec, pidFile string) {
	ci := &ctrInfo{bundle: bundle, spec: spec}
	if spec.Linux != nil {
		ci.cgroupsPath = spec.Linux.CgroupsPath
	}
	pid := 0
	if b, err := os.ReadFile(pidFile); err == nil {
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if pid <= 0 {
		if st, err := r.State(ctx, id); err == nil {
			pid = st.Pid
		}
	}
	if pid > 0 {
		ci.pid = pid
		theReaper.track(pid)
		ci.pids = append(ci.pids, pid)
	}
	ci.pids = append(ci.pids, theReaper.adopt(r.binary)...)
	r.containers.Store(id, ci)
}

func (r *runsc) Start(ctx context.Context, id string) error {
	if _, _, err := r.run(ctx, call{id: id, args: []string{"start", id}}); err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	ci := r.info(id)
	ci.mu.Lock()
	spec := ci.spec
	ci.mu.Unlock()
	if spec == nil { // created by another process: read the bundle it was made from
		st, err := r.State(ctx, id)
		if err != nil {
			return fmt.Errorf("start %s: %w", id, err)
		}
		if spec, err = ReadSpec(st.Bundle); err != nil {
			return fmt.Errorf("start %s: %w", id, err)
		}
	}
	if err := applyDeferredCPUQuota(spec); err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	return nil
}

func (r *runsc) Run(ctx context.Context, id, bundle string, o CreateOpts) (ExitInfo, error) {
	o.Start = true
	if err := r.Create(ctx, id, bundle, o); err != nil {
		return ExitInfo{}, err
	}
	return r.Wait(ctx, id)
}
