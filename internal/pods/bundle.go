package pods

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pinacle/pinacle-node/imagestore"
	"github.com/pinacle/pinacle-node/internal/fileutil"
	"github.com/pinacle/pinacle-node/netns"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/podspec"
	"github.com/pinacle/pinacle-node/supervisor"
)

// Paths inside the sandbox where the node's own files appear.
const (
	sandboxBin    = "/.pinacle/bin/pinacle-node"
	sandboxInit   = "/.pinacle/bin/pinacle-init"
	sandboxConfig = "/.pinacle/config"
	sandboxRun    = "/.pinacle/run"
)

func (m *Manager) bundleDir(id string) string  { return filepath.Join(m.podDir(id), "bundle") }
func (m *Manager) runDir(id string) string     { return filepath.Join(m.podDir(id), "run") }
func (m *Manager) logDir(id string) string     { return filepath.Join(m.runDir(id), "logs") }
func (m *Manager) statusFile(id string) string { return filepath.Join(m.runDir(id), "status.json") }
func (m *Manager) configDir(id string) string  { return filepath.Join(m.podDir(id), "config") }

// prepareRootfs creates what the pod expects in its root: the mount points
// of the node's files and the working directory, owned by the pod's user.
func (m *Manager) prepareRootfs(ctx context.Context, id, root string, spec *podspec.Pod) error {
	for _, d := range []string{sandboxConfig, sandboxRun, filepath.Dir(sandboxBin)} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	for _, bin := range []string{sandboxBin, sandboxInit} {
		f, err := os.OpenFile(filepath.Join(root, bin), os.O_CREATE|os.O_RDONLY, 0o755)
		if err != nil {
			return fmt.Errorf("mount point %s: %w", bin, err)
		}
		f.Close()
	}
	if spec.WorkingDir == "" {
		return nil
	}
	wd := filepath.Join(root, filepath.Clean("/"+spec.WorkingDir))
	if _, err := os.Stat(wd); !errors.Is(err, os.ErrNotExist) {
		return nil // the image's own, or made on an earlier start
	}
	if err := os.MkdirAll(wd, 0o755); err != nil {
		return fmt.Errorf("workingDir %s: %w", spec.WorkingDir, err)
	}
	return m.chownToUser(ctx, id, root, spec.User, wd, false)
}

// chownToUser hands path (with all under it when tree is set) to user,
// as the image's passwd and group files resolve it. A user the image
// does not know is the services' problem to report, so it is only an
// event here; a chown that fails is an error.
func (m *Manager) chownToUser(ctx context.Context, id, root, user, path string, tree bool) error {
	if user == "" {
		return nil
	}
	u, err := oci.ResolveUser(root, user)
	if err != nil {
		m.event(ctx, id, "warning", "UserUnknown", fmt.Sprintf("%s left owned by root: user %s: %v", strings.TrimPrefix(path, root), user, err))
		return nil
	}
	chown := func(p string) error {
		if err := os.Lchown(p, int(u.UID), int(u.GID)); err != nil {
			return fmt.Errorf("chown %s to %s: %w", strings.TrimPrefix(p, root), user, err)
		}
		return nil
	}
	if !tree {
		return chown(path)
	}
	return filepath.WalkDir(path, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return chown(p)
	})
}

// writeBundle writes the supervisor's config and the runtime spec.
//
// Init holds CAP_SYS_ADMIN (InitCapabilities: exec'd processes do not
// get it) to set a claimed warm sandbox's hostname, and drops it before
// it starts any service (DropCapabilities); every pod's spec is the same
// in this, claimed or cold, so checkpoints restore into either. claim,
// when set, makes the bundle a warm entry's: init waits on standby.
func (m *Manager) writeBundle(id string, spec *podspec.Pod, img *imagestore.RootFS, root string, att *netns.Attachment, limits podspec.Limits, claim *supervisor.ClaimConfig) error {
	cfg := supervisor.Config{
		Standby:          claim != nil,
		Claim:            claim,
		DropCapabilities: initOnlyCaps,
		Env:              spec.Environment,
		LogDir:           supervisor.DefaultLogDir,
		StatusFile:       supervisor.DefaultStatusFile,
		// The pod-level readiness checks run in init beside the services'.
		Checks:     spec.HealthChecks,
		User:       spec.User,
		WorkingDir: spec.WorkingDir,
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
	if err := m.ensureServiceSecrets(id, root, spec); err != nil {
		return err
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if claim != nil {
		mode = 0o600 // the claim token: for init (and root) only
	}
	if err := fileutil.WriteAtomic(filepath.Join(m.configDir(id), "services.json"), b, mode); err != nil {
		return err
	}
	resolv, hosts, _ := att.Files() // the hostname is the spec's, set below
	var env []string
	for k, v := range spec.Environment {
		env = append(env, k+"="+v)
	}
	var imgCfg = img.Config.Config
	o := oci.SpecOptions{
		Image:            imgCfg,
		Entrypoint:       []string{sandboxInit, "--config", sandboxConfig + "/services.json"},
		Env:              env,
		WorkingDir:       "/",
		User:             "0:0",
		InitCapabilities: initOnlyCaps,
		Hostname:         hostname(spec),
		RootPath:         root,
		CgroupsPath:      m.cgroupsPath(id),
		CPUs:             limits.CPUCores,
		// The boot runs unthrottled (at 0.5 CPU it takes 2.7x as long);
		// the runtime applies the quota once the sandbox has started.
		DeferCPUQuota: true,
		CPUShares:     limits.CPUShares,
		MemoryBytes:   limits.MemoryBytes,
		PidsLimit:     limits.PidsLimit,
		NetNSPath:     att.NetnsPath,
		Network:       oci.NetworkSandbox,
		ResolvConf:    resolv,
		Hosts:         hosts,
		Mounts: []oci.Mount{
			{Source: m.cfg.InitBinary, Destination: sandboxBin, ReadOnly: true},
			{Source: m.cfg.PodInit, Destination: sandboxInit, ReadOnly: true},
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

// initOnlyCaps are what init holds beyond the pods' default set, and
// drops before any service starts (writeBundle).
var initOnlyCaps = []string{"CAP_SYS_ADMIN"}

// DefaultCgroupParent holds every pod's cgroup (v1: under every
// controller) unless Config.CgroupParent names another. It outlives its
// pods; `pinacle-node cleanup` removes it.
const DefaultCgroupParent = "/pinacle"

// cgroupsPath is the pod's cgroup.
func (m *Manager) cgroupsPath(id string) string { return m.cfg.CgroupParent + "/" + id }
