package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Exec runs opts.Args in the container through a process.json (the only
// way to mark stdio as a terminal), inheriting the container's env, cwd,
// user and capabilities unless overridden.
func (r *runsc) Exec(ctx context.Context, id string, o ExecOpts) (int, error) {
	if len(o.Args) == 0 {
		return -1, fmt.Errorf("exec %s: args: empty: %w", id, errdefs.ErrInvalidArgument)
	}
	spec, err := r.spec(ctx, id)
	if err != nil {
		return -1, fmt.Errorf("exec %s: %w", id, err)
	}
	if spec.Process == nil {
		return -1, fmt.Errorf("exec %s: container spec has no process: %w", id, errdefs.ErrInvalidArgument)
	}
	p := specs.Process{
		Terminal:        o.Tty,
		User:            spec.Process.User,
		Args:            o.Args,
		Env:             mergeEnv(spec.Process.Env, o.Env),
		Cwd:             spec.Process.Cwd,
		Capabilities:    spec.Process.Capabilities,
		NoNewPrivileges: spec.Process.NoNewPrivileges,
	}
	if o.Cwd != "" {
		p.Cwd = o.Cwd
	}
	if len(o.AddCaps) > 0 {
		p.Capabilities = addCaps(p.Capabilities, o.AddCaps)
	}
	if o.User != "" {
		u, err := execUser(spec, o.User)
		if err != nil {
			return -1, fmt.Errorf("exec %s: %w", id, err)
		}
		p.User = u
	}
	if o.AdditionalGids != nil {
		p.User.AdditionalGids = o.AdditionalGids
	}
	pf, err := os.CreateTemp("", "runsc-process-*.json")
	if err != nil {
		return -1, err
	}
	defer os.Remove(pf.Name())
	if err := json.NewEncoder(pf).Encode(&p); err != nil {
		pf.Close()
		return -1, err
	}
	if err := pf.Close(); err != nil {
		return -1, err
	}
	args := []string{"exec", "--process=" + pf.Name()}
	if o.Detach {
		args = append(args, "--detach")
	}
	if o.ConsoleSocket != "" {
		args = append(args, "--console-socket="+o.ConsoleSocket)
	}
	if o.PidFile != "" {
		args = append(args, "--pid-file="+o.PidFile)
	}
	args = append(args, id)
	_, code, err := r.run(ctx, call{
		id: id, args: args,
		stdin: o.Stdin, stdout: o.Stdout, stderr: o.Stderr,
		unbounded: !o.Detach, tty: o.Tty && o.Stdin != nil,
		exitPassthrough: !o.Detach,
	})
	if o.Detach {
		// runsc exec --detach leaves a helper that waits for the process;
		// it is reparented to us and must be reaped when it ends.
		ci := r.info(id)
		found := theReaper.adopt(r.binary)
		ci.mu.Lock()
		ci.pids = append(ci.pids, found...)
		ci.mu.Unlock()
	}
	if err != nil {
		return code, fmt.Errorf("exec %s: %w", id, err)
	}
	return code, nil
}

// execUser resolves "name", "uid", "uid:gid", "name:group" against the
// container's rootfs.
func execUser(spec *specs.Spec, user string) (specs.User, error) {
	if spec.Root != nil && spec.Root.Path != "" {
		u, err := ResolveUser(spec.Root.Path, user)
		if err != nil {
			return specs.User{}, err
		}
		return specs.User{UID: u.UID, GID: u.GID, AdditionalGids: u.AdditionalGids}, nil
	}
	us, gs, _ := strings.Cut(user, ":")
	uid, err := strconv.ParseUint(us, 10, 32)
	if err != nil {
		return specs.User{}, fmt.Errorf("user %q: %w", user, errdefs.ErrInvalidArgument)
	}
	var gid uint64
	if gs != "" {
		if gid, err = strconv.ParseUint(gs, 10, 32); err != nil {
			return specs.User{}, fmt.Errorf("user %q: %w", user, errdefs.ErrInvalidArgument)
		}
	}
	return specs.User{UID: uint32(uid), GID: uint32(gid)}, nil
}

// spec returns the container's spec, cached from Create or read from the
// bundle that runsc reports.
func (r *runsc) spec(ctx context.Context, id string) (*specs.Spec, error) {
	if v, ok := r.containers.Load(id); ok {
		ci := v.(*ctrInfo)
		ci.mu.Lock()
		s := ci.spec
		ci.mu.Unlock()
		if s != nil {
			return s, nil
		}
	}
	_, st, err := r.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	s, err := ReadSpec(st.Bundle)
	if err != nil {
		return nil, err
	}
	ci := r.info(id)
	ci.mu.Lock()
	ci.spec = s
	ci.mu.Unlock()
	return s, nil
}

// addCaps returns c with extra added to every set (c itself is shared
// with the cached spec and is not modified).
func addCaps(c *specs.LinuxCapabilities, extra []string) *specs.LinuxCapabilities {
	out := &specs.LinuxCapabilities{}
	if c != nil {
		*out = *c
	}
	add := func(set []string) []string {
		set = append([]string(nil), set...)
		for _, e := range extra {
			if !slices.Contains(set, e) {
				set = append(set, e)
			}
		}
		return set
	}
	out.Bounding, out.Effective, out.Permitted = add(out.Bounding), add(out.Effective), add(out.Permitted)
	return out
}
