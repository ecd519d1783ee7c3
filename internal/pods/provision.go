package pods

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pinacle/pinacle-node/imagestore"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/netns"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/podspec"
	"github.com/pinacle/pinacle-node/rootfs"
	"github.com/pinacle/pinacle-node/supervisor"
	"github.com/pinacle/pinacle-node/templates"
)

// Paths inside the sandbox where the node's own files appear.
const (
	sandboxBin    = "/.pinacle/bin/pinacle-node"
	sandboxConfig = "/.pinacle/config"
	sandboxRun    = "/.pinacle/run"
)

func (m *Manager) bundleDir(id string) string  { return filepath.Join(m.podDir(id), "bundle") }
func (m *Manager) runDir(id string) string     { return filepath.Join(m.podDir(id), "run") }
func (m *Manager) logDir(id string) string     { return filepath.Join(m.runDir(id), "logs") }
func (m *Manager) statusFile(id string) string { return filepath.Join(m.runDir(id), "status.json") }
func (m *Manager) configDir(id string) string  { return filepath.Join(m.podDir(id), "config") }

// undoStack collects the undo of each provisioning step; run unwinds it in
// reverse, with a context that outlives the failed operation's.
type undoStack []func(context.Context)

func (u *undoStack) push(f func(context.Context)) { *u = append(*u, f) }

func (u undoStack) run(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	for i := len(u) - 1; i >= 0; i-- {
		u[i](ctx)
	}
}

// Create implements Service.
func (m *Manager) Create(ctx context.Context, req CreateRequest) (*Pod, error) {
	spec, note, err := m.prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	p, err := m.cfg.Store.CreatePod(ctx, store.Pod{ID: spec.ID, Name: spec.Name, Spec: b})
	if err != nil {
		if spec.GithubRepo != "" {
			_ = os.RemoveAll(m.podDir(spec.ID))
		}
		return nil, err
	}
	if note != "" {
		m.event(ctx, p.ID, "repository", "Cloned", note)
	}
	done := m.background(p.ID, func(ctx context.Context) error { return m.provision(ctx, p.ID) })
	return m.maybeWait(ctx, p.ID, req.Wait, done)
}

// resolve merges the request onto its template and validates the result.
func (m *Manager) resolve(req CreateRequest) (*podspec.Pod, error) {
	spec := req.Spec
	if req.Template != "" {
		spec.Template = req.Template
	}
	if len(req.Sets) > 0 {
		b, err := json.Marshal(spec)
		if err != nil {
			return nil, err
		}
		p, err := podspec.DecodeWithSets(b, req.Sets)
		if err != nil {
			return nil, err
		}
		spec = *p
	}
	if spec.ID == "" {
		spec.ID = newID()
	}
	if err := errdefs.ValidateID("pod", spec.ID); err != nil {
		return nil, err
	}
	if spec.Name == "" {
		spec.Name = spec.ID
	}
	return m.cfg.Templates.Resolve(&spec)
}

// prepare resolves req; a spec naming a repository gets it cloned first,
// and, without a template, the template detected from the checkout.
func (m *Manager) prepare(ctx context.Context, req CreateRequest) (*podspec.Pod, string, error) {
	if req.Spec.GithubRepo == "" {
		spec, err := m.resolve(req)
		return spec, "", err
	}
	if req.Spec.ID == "" {
		req.Spec.ID = newID()
	}
	id := req.Spec.ID
	if err := errdefs.ValidateID("pod", id); err != nil {
		return nil, "", err
	}
	name := req.Spec.Name
	if name == "" {
		name = id
	}
	if _, err := m.cfg.Store.GetPodByName(ctx, name); err == nil {
		return nil, "", fmt.Errorf("pod name %s: %w", name, errdefs.ErrAlreadyExists)
	}
	if _, err := m.cfg.Store.GetPod(ctx, id); err == nil {
		return nil, "", fmt.Errorf("pod %s: %w", id, errdefs.ErrAlreadyExists)
	}
	// The repository and branch names are checked before anything runs.
	probe := podspec.Pod{GithubRepo: req.Spec.GithubRepo, GithubBranch: req.Spec.GithubBranch}
	if err := probe.Validate(); err != nil {
		var ve *podspec.ValidationError
		if errors.As(err, &ve) {
			for _, fe := range ve.Errors {
				if strings.HasPrefix(fe.Field, "github") {
					return nil, "", err
				}
			}
		}
	}
	if err := m.clone(ctx, id, &probe); err != nil {
		_ = os.RemoveAll(m.podDir(id))
		return nil, "", err
	}
	note := "cloned " + req.Spec.GithubRepo
	if req.Spec.Template == "" && req.Template == "" {
		det, err := templates.Detect(ctx, m.cloneDir(id))
		if err != nil {
			_ = os.RemoveAll(m.podDir(id))
			return nil, "", err
		}
		req.Template = det.Template
		note += fmt.Sprintf("; detected template %s: %s", det.Template, det.Reason)
	}
	spec, err := m.resolve(req)
	if err != nil {
		_ = os.RemoveAll(m.podDir(id))
		return nil, "", err
	}
	return spec, note, nil
}

// background runs op for pod id under the pod's lock and the manager's
// lifetime (a client going away does not abort a provisioning half way).
func (m *Manager) background(id string, op func(context.Context) error) <-chan error {
	done := make(chan error, 1)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		unlock := m.lock(id)
		defer unlock()
		done <- op(m.bg)
	}()
	return done
}

func (m *Manager) maybeWait(ctx context.Context, id string, wait bool, done <-chan error) (*Pod, error) {
	if wait {
		select {
		case err := <-done:
			if err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return m.Get(ctx, id)
}

// Start implements Service.
func (m *Manager) Start(ctx context.Context, idOrName string) (*Pod, error) {
	p, err := m.find(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	done := m.background(p.ID, func(ctx context.Context) error { return m.start(ctx, p.ID) })
	return m.maybeWait(ctx, p.ID, true, done)
}

// provision brings a new (pending) pod up for the first time. Create is
// not a lifecycle operation on an existing pod (lifecycle.Decide does not
// take it): the pod was just recorded pending, so it simply moves on.
func (m *Manager) provision(ctx context.Context, id string) error {
	p, err := m.cfg.Store.Transition(ctx, id, lifecycle.Provisioning, "")
	if err != nil {
		return err
	}
	return m.bringUp(ctx, p)
}

// start enters starting (or does nothing, for a running pod) and brings
// the pod up; on failure it undoes what it did and leaves the pod failed.
func (m *Manager) start(ctx context.Context, id string) error {
	dec, p, err := m.cfg.Store.ApplyOp(ctx, id, lifecycle.OpStart, "")
	if err != nil {
		return err
	}
	switch dec.Action {
	case lifecycle.NoOp:
		return nil
	case lifecycle.Await:
		return fmt.Errorf("pod %s is %s: %w", id, p.State, errdefs.ErrConflict)
	}
	return m.bringUp(ctx, p)
}

func (m *Manager) bringUp(ctx context.Context, p *store.Pod) (retErr error) {
	id := p.ID
	crashpoint("up:recorded")
	spec, err := decodeSpec(p)
	if err != nil {
		return m.fail(ctx, id, err)
	}
	st := decodeStatus(p)
	t0 := time.Now()
	var steps []any
	step := func(name string) { steps = append(steps, name, time.Since(t0).Round(time.Microsecond).String()) }
	var undo undoStack
	defer func() {
		if retErr != nil {
			undo.run(ctx)
			retErr = m.fail(ctx, id, retErr)
		}
	}()
	limits, err := spec.Resources.Limits()
	if err != nil {
		return err
	}
	nspec, err := netSpec(id, spec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(m.logDir(id), 0o755); err != nil {
		return err
	}
	// CNI ADD runs while the image and rootfs are prepared: it costs about
	// as much as everything else together.
	type netResult struct {
		att *netns.Attachment
		err error
	}
	netc := make(chan netResult, 1)
	go func() {
		att, err := m.cfg.Net.Setup(ctx, nspec)
		netc <- netResult{att, err}
	}()
	undo.push(func(ctx context.Context) {
		if err := m.cfg.Net.Teardown(ctx, id); err != nil {
			m.log.Warn("undo network", "pod", id, "err", err)
		}
	})
	waitNet := func() (*netns.Attachment, error) {
		r := <-netc
		if r.err != nil {
			return nil, fmt.Errorf("network: %w", r.err)
		}
		return r.att, nil
	}
	netWaited := false
	defer func() {
		if !netWaited {
			<-netc // never leave Setup running behind our back
		}
	}()

	rfsInfo, err := m.image(ctx, id, spec.BaseImage, &st)
	if err != nil {
		return err
	}
	ropts := rootfs.Options{StorageBytes: limits.StorageBytes, Spares: m.cfg.StorageSpares}
	rfs, err := rootfs.Mount(ctx, rfsInfo.LayerDirs, m.podDir(id), ropts)
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		// Left mounted by an interrupted operation: start from a clean mount.
		_ = rootfs.Unmount(ctx, m.podDir(id))
		rfs, err = rootfs.Mount(ctx, rfsInfo.LayerDirs, m.podDir(id), ropts)
	}
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	undo.push(func(ctx context.Context) {
		if err := rootfs.Unmount(ctx, m.podDir(id)); err != nil {
			m.log.Warn("undo rootfs", "pod", id, "err", err)
		}
	})
	step("rootfs")
	crashpoint("up:rootfs")
	if err := m.prepareRootfs(rfs.Path, spec); err != nil {
		return err
	}
	if err := m.placeClone(ctx, id, rfs.Path, spec); err != nil {
		return err
	}
	att, err := waitNet()
	step("network")
	crashpoint("up:network")
	netWaited = true
	if err != nil {
		return err
	}
	allocs, err := m.cfg.Ports.Allocate(ctx, id, portRequests(spec))
	if err != nil {
		return fmt.Errorf("ports: %w", err)
	}
	st.Ports = allocs
	crashpoint("up:ports")
	st.IP = att.IP.String()
	st.NetnsPath = att.NetnsPath
	if err := m.writeBundle(id, spec, rfsInfo, rfs.Path, att, limits); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	step("bundle")
	crashpoint("up:bundle")
	// A stale status file would read as ready before init wrote its own.
	_ = os.Remove(m.statusFile(id))
	logf, err := os.OpenFile(filepath.Join(m.logDir(id), "sandbox.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	_ = m.cfg.Runtime.Delete(ctx, id, true) // a leftover of an interrupted start
	// The host ports open while the sandbox boots (binding them and
	// installing their kernel rules costs ~20 ms, the boot ~300): until
	// the pod listens, a connection is refused, as it would be a moment
	// after start anyway. Stop is idempotent, so its undo goes first.
	undo.push(func(ctx context.Context) { _ = m.cfg.Ports.Stop(ctx, id) })
	portsc := make(chan error, 1)
	go func() { portsc <- m.cfg.Ports.Start(ctx, id, att.IP) }()
	// Created and started in one runsc call. A failure can leave a
	// created sandbox behind, so the undo is pushed either way.
	undo.push(func(ctx context.Context) { m.deleteSandbox(ctx, id) })
	serr := m.cfg.Runtime.Create(ctx, id, m.bundleDir(id), oci.CreateOpts{Stdout: logf, Stderr: logf, Start: true})
	perr := <-portsc // never undo with Start still running
	if serr != nil {
		return fmt.Errorf("sandbox: %w", serr)
	}
	step("sandbox")
	crashpoint("up:started")
	if perr != nil {
		return fmt.Errorf("ports: %w", perr)
	}
	// The readiness gate is the services'. A pod with none is running once
	// its sandbox is: waiting for init to say "nothing to start" would add
	// its Go start-up in gVisor (60-90 ms) and gate nothing. If init fails
	// later, the sandbox exits with it and the watcher fails the pod.
	if len(spec.Services) > 0 {
		if err := m.waitReady(ctx, id, spec); err != nil {
			return err
		}
	}
	step("ready")
	crashpoint("up:ready")
	m.log.Info("pod up", append([]any{"pod", id}, steps...)...)
	_, err = m.cfg.Store.TransitionWith(ctx, id, lifecycle.Running, "", func(p *store.Pod) error {
		b, err := json.Marshal(st)
		p.Status = b
		return err
	})
	if err != nil {
		return err
	}
	m.watch(id)
	return nil
}

// fail records err as the pod's failure reason and returns err.
func (m *Manager) fail(ctx context.Context, id string, err error) error {
	if _, terr := m.cfg.Store.Transition(context.WithoutCancel(ctx), id, lifecycle.Failed, err.Error()); terr != nil {
		m.log.Warn("recording failure", "pod", id, "err", terr, "cause", err)
	}
	return fmt.Errorf("pod %s: %w", id, err)
}

// image finds the pod's image, pulling it if needed, and leases it.
func (m *Manager) image(ctx context.Context, id, ref string, st *podStatus) (*imagestore.RootFS, error) {
	if st.ImageDigest != "" {
		ref = st.ImageDigest // a restart uses exactly the image the pod was created with
	}
	rfs, err := m.cfg.Images.RootFS(ctx, ref)
	if errors.Is(err, errdefs.ErrNotFound) && !m.cfg.NoPull && st.ImageDigest == "" {
		m.event(ctx, id, "progress", "Pulling", "pulling image "+ref)
		last := time.Now()
		if _, err = m.cfg.Images.Pull(ctx, ref, imagestore.WithProgress(func(e imagestore.Event) {
			if time.Since(last) > time.Second || e.Phase == imagestore.PhaseDone {
				last = time.Now()
				m.event(ctx, id, "progress", "Pulling", fmt.Sprintf("%s %s %d/%d", e.Layer, e.Phase, e.Done, e.Total))
			}
		})); err == nil {
			rfs, err = m.cfg.Images.RootFS(ctx, ref)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	if _, err := m.cfg.Images.AddLease(ctx, id, rfs.Image.Digest); err != nil {
		return nil, fmt.Errorf("image %s: lease: %w", ref, err)
	}
	if st.ImageDigest == "" {
		st.Image = ref
		st.ImageDigest = rfs.Image.Digest
	}
	return rfs, nil
}

// prepareRootfs creates what the pod expects in its root: the mount points
// of the node's files and the working directory, owned by the pod's user.
func (m *Manager) prepareRootfs(root string, spec *podspec.Pod) error {
	for _, d := range []string{sandboxConfig, sandboxRun, filepath.Dir(sandboxBin)} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	if f, err := os.OpenFile(filepath.Join(root, sandboxBin), os.O_CREATE|os.O_RDONLY, 0o755); err == nil {
		f.Close()
	}
	if spec.WorkingDir != "" {
		wd := filepath.Join(root, filepath.Clean("/"+spec.WorkingDir))
		if _, err := os.Stat(wd); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(wd, 0o755); err != nil {
				return fmt.Errorf("workingDir %s: %w", spec.WorkingDir, err)
			}
			if spec.User != "" {
				if u, err := oci.ResolveUser(root, spec.User); err == nil {
					_ = os.Lchown(wd, int(u.UID), int(u.GID))
				}
			}
		}
	}
	return nil
}

// writeBundle writes the supervisor's config and the runtime spec.
func (m *Manager) writeBundle(id string, spec *podspec.Pod, img *imagestore.RootFS, root string, att *netns.Attachment, limits podspec.Limits) error {
	cfg := supervisor.Config{
		Env:        spec.Environment,
		LogDir:     supervisor.DefaultLogDir,
		StatusFile: supervisor.DefaultStatusFile,
	}
	for _, s := range spec.Services {
		if s.User == "" {
			s.User = spec.User
		}
		if s.WorkingDir == "" {
			s.WorkingDir = spec.WorkingDir
		}
		cfg.Services = append(cfg.Services, s)
	}
	if err := os.MkdirAll(m.configDir(id), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(m.configDir(id), "services.json"), b); err != nil {
		return err
	}
	resolv, hosts, _ := att.Files()
	var env []string
	for k, v := range spec.Environment {
		env = append(env, k+"="+v)
	}
	var imgCfg = img.Config.Config
	o := oci.SpecOptions{
		Image:       imgCfg,
		Entrypoint:  []string{sandboxBin, "init", "--config", sandboxConfig + "/services.json"},
		Env:         env,
		WorkingDir:  "/",
		User:        "0:0",
		Hostname:    hostname(spec),
		RootPath:    root,
		CgroupsPath: cgroupsPath(id),
		CPUs:        limits.CPUCores,
		// The boot runs unthrottled (at 0.5 CPU it takes 2.7x as long);
		// the runtime applies the quota once the sandbox has started.
		DeferCPUQuota: true,
		MemoryBytes:   limits.MemoryBytes,
		PidsLimit:     limits.PidsLimit,
		NetNSPath:     att.NetnsPath,
		Network:       oci.NetworkSandbox,
		ResolvConf:    resolv,
		Hosts:         hosts,
		Mounts: []oci.Mount{
			{Source: m.cfg.InitBinary, Destination: sandboxBin, ReadOnly: true},
			{Source: m.configDir(id), Destination: sandboxConfig, ReadOnly: true},
			{Source: m.runDir(id), Destination: sandboxRun},
		},
		Annotations: map[string]string{"dev.pinacle.pod": id},
	}
	if att.Mode == netns.ModeNone {
		o.Network = oci.NetworkNone
	}
	_, err = oci.NewBundle(m.bundleDir(id), o)
	return err
}

// waitReady polls init's status file until every service is ready, init
// reports an error, the sandbox dies, or a service overruns its own start
// period (start period plus retries of its health check, counted from when
// its process started, so a long install step does not count against it).
// ReadyTimeout caps the whole wait.
func (m *Manager) waitReady(ctx context.Context, id string, spec *podspec.Pod) error {
	checks := map[string]*podspec.HealthCheck{}
	for i := range spec.Services {
		checks[spec.Services[i].Name] = spec.Services[i].HealthCheck
	}
	begun := time.Now()
	deadline := begun.Add(m.cfg.ReadyTimeout)
	interval := 5 * time.Millisecond
	var last *supervisor.Status
	lastAlive := time.Now()
	for {
		st, err := supervisor.ReadStatus(m.statusFile(id))
		if err == nil {
			last = st
			if st.Error != "" {
				return fmt.Errorf("services: %s", st.Error)
			}
			if st.Ready {
				return nil
			}
			if failed := failedService(st); failed != nil {
				return m.serviceFailure(id, failed, "failed")
			}
			for i := range st.Services {
				s := &st.Services[i]
				hc := checks[s.Name]
				if hc == nil || s.StartedAt.IsZero() || serviceReady(s) {
					continue
				}
				allowed := hc.StartPeriod.Duration + time.Duration(hc.Retries+1)*(hc.Interval.Duration+hc.Timeout.Duration)
				if time.Since(s.StartedAt) > allowed {
					return m.serviceFailure(id, s, fmt.Sprintf("not healthy within %s", allowed))
				}
			}
		}
		if time.Since(lastAlive) > time.Second {
			// Once a second, make sure the sandbox is still there (each
			// check runs runsc, too costly for every poll).
			if s, err := m.cfg.Runtime.State(ctx, id); err != nil || s.Status != oci.StatusRunning {
				return fmt.Errorf("sandbox stopped while starting: %s", m.tailFile(filepath.Join(m.logDir(id), "sandbox.log"), 5))
			}
			lastAlive = time.Now()
		}
		if time.Now().After(deadline) {
			if last != nil {
				for i := range last.Services {
					if s := &last.Services[i]; !serviceReady(s) {
						return m.serviceFailure(id, s, fmt.Sprintf("not ready after %s", m.cfg.ReadyTimeout))
					}
				}
			}
			return fmt.Errorf("services not ready after %s: %w", m.cfg.ReadyTimeout, context.DeadlineExceeded)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
		// Every 5 ms for the first seconds, where pods usually become
		// ready (a coarser step shows up directly in create -> running),
		// then easing off to 100 ms for pods that install things.
		if time.Since(begun) > 3*time.Second && interval < 100*time.Millisecond {
			interval += 5 * time.Millisecond
		}
	}
}

func serviceReady(s *supervisor.ServiceStatus) bool {
	switch s.State {
	case supervisor.StateHealthy, supervisor.StateRunning:
		return s.State == supervisor.StateHealthy || s.Health == ""
	case supervisor.StateExited:
		return s.LastExitCode != nil && *s.LastExitCode == 0
	}
	return false
}

func failedService(st *supervisor.Status) *supervisor.ServiceStatus {
	for i := range st.Services {
		if st.Services[i].State == supervisor.StateFailed {
			return &st.Services[i]
		}
	}
	return nil
}

// serviceFailure names the service, its state and its last log lines.
func (m *Manager) serviceFailure(id string, s *supervisor.ServiceStatus, what string) error {
	msg := fmt.Sprintf("service %s %s (state %s", s.Name, what, s.State)
	if s.LastError != "" {
		msg += ", " + s.LastError
	}
	if s.LastExitCode != nil {
		msg += fmt.Sprintf(", last exit %d", *s.LastExitCode)
	}
	msg += ")"
	if lines, err := supervisor.TailLogs(m.logDir(id), s.Name, 5); err == nil && len(lines) > 0 {
		msg += "; last log lines: " + strings.Join(lines, " | ")
	}
	return errors.New(msg)
}

func (m *Manager) tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// CgroupParent holds every pod's cgroup (v1: under every controller). It
// outlives its pods; `pinacle-node cleanup` removes it.
const CgroupParent = "/pinacle"

// cgroupsPath is the pod's cgroup.
func cgroupsPath(id string) string { return CgroupParent + "/" + id }
