package oci

// The spec builder: SpecOptions to a runtime spec. It knows nothing of
// runsc; bundle.go writes what it builds.

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Mount is an extra bind mount into the container.
type Mount struct {
	Source      string // host path
	Destination string // absolute path in the container
	ReadOnly    bool
}

// SpecOptions describe one container: the image's config plus the pod's
// overrides and limits. The zero value of each limit means "no limit".
type SpecOptions struct {
	// Image is the image's runtime config (ConfigFile.Config).
	Image v1.Config
	// Entrypoint, when non-nil, replaces the image's entrypoint and (like
	// docker run --entrypoint) drops the image's Cmd.
	Entrypoint []string
	// Args, when non-empty, replaces the image's Cmd (docker run IMAGE ARGS).
	Args []string
	// Env entries (KEY=VALUE) override the image's by key.
	Env []string
	// WorkingDir overrides the image's; default "/".
	WorkingDir string
	// User overrides the image's: name, uid, name:group or uid:gid,
	// resolved through the rootfs's /etc/passwd and /etc/group.
	User string

	Hostname string
	Mounts   []Mount

	// RootPath is the container's root filesystem (the merged overlay).
	RootPath     string
	RootReadonly bool
	Terminal     bool

	// CgroupsPath is the cgroup (v1: under every controller), e.g. /pinacle/<id>.
	CgroupsPath string
	// CPUs is a CFS quota in CPUs (0.5 = half a CPU) over a 100 ms period.
	CPUs float64
	// DeferCPUQuota boots the sandbox unthrottled: the quota is left out
	// of the spec's resources (the period stays, so the cpu controller is
	// set up) and recorded in AnnotationCPUQuota, which the runtime applies
	// once the container has started. gVisor's boot is CPU-bound and runs
	// in the container's cgroup, so a small quota makes the boot several
	// times slower (docs/runtime.md, Figures).
	DeferCPUQuota bool
	// CPUShares is the cgroup's relative CPU weight under contention
	// (cgroup v1 cpu.shares; 1024 is one CPU's worth). Zero leaves the
	// kernel default.
	CPUShares uint64
	// MemoryBytes limits memory; swap is set to the same value (no swap).
	MemoryBytes int64
	PidsLimit   int64
	// NoFile is the RLIMIT_NOFILE soft and hard limit; default 1048576.
	NoFile uint64

	// Capabilities, when non-nil, replaces DefaultCapabilities ("CAP_" optional).
	Capabilities []string
	// InitCapabilities are given to the container's own process (init)
	// on top of Capabilities, and recorded in AnnotationInitCapabilities
	// so that Exec leaves them out: init needs them for a moment and
	// drops them itself ("CAP_" form).
	InitCapabilities []string
	NoNewPrivileges  bool
	// MaskedPaths and ReadonlyPaths, when non-nil, replace Docker's defaults.
	MaskedPaths   []string
	ReadonlyPaths []string

	// NetNSPath joins an existing network namespace (the pod's CNI netns).
	// Empty gives the sandbox a fresh namespace of its own.
	NetNSPath string
	// Network is the runsc --network mode the bundle expects (sandbox, none,
	// host); it is recorded as an annotation for whoever calls Create.
	Network string

	// ResolvConf, Hosts: file contents bind-mounted read-only at
	// /etc/resolv.conf and /etc/hosts. Nil leaves the image's file. The
	// hostname file is always written when Hostname is set.
	ResolvConf []byte
	Hosts      []byte

	Annotations map[string]string
}

// BuildSpec turns opts into a runtime spec. bundleDir is where NewBundle
// writes the /etc files that the spec bind-mounts; BuildSpec itself only
// reads the rootfs (for user resolution).
func BuildSpec(bundleDir string, o SpecOptions) (*specs.Spec, error) {
	if err := o.validate(bundleDir); err != nil {
		return nil, err
	}
	args := buildArgs(o)
	if len(args) == 0 {
		return nil, fmt.Errorf("args: image has no entrypoint or cmd and none was given: %w", errdefs.ErrInvalidArgument)
	}
	user := o.User
	if user == "" {
		user = o.Image.User
	}
	u, err := ResolveUser(o.RootPath, user)
	if err != nil {
		return nil, fmt.Errorf("user: %w", err)
	}
	env := o.env(u.Home)
	cwd := cmp.Or(o.WorkingDir, o.Image.WorkingDir, "/")
	caps := o.capabilities()
	for _, c := range o.InitCapabilities {
		if !slices.Contains(caps, c) {
			caps = append(slices.Clip(caps), c)
		}
	}
	nofile := cmp.Or(o.NoFile, 1<<20)
	masked, readonly := DefaultMaskedPaths, DefaultReadonlyPaths
	if o.MaskedPaths != nil {
		masked = o.MaskedPaths
	}
	if o.ReadonlyPaths != nil {
		readonly = o.ReadonlyPaths
	}

	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Terminal: o.Terminal,
			User:     specs.User{UID: u.UID, GID: u.GID, AdditionalGids: u.AdditionalGids},
			Args:     args,
			Env:      env,
			Cwd:      cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: slices.Clone(caps), Effective: slices.Clone(caps), Permitted: slices.Clone(caps),
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: nofile, Soft: nofile}},
			NoNewPrivileges: o.NoNewPrivileges,
		},
		Root:     &specs.Root{Path: o.RootPath, Readonly: o.RootReadonly},
		Hostname: o.Hostname,
		Mounts:   defaultMounts(),
		Linux: &specs.Linux{
			CgroupsPath: o.CgroupsPath,
			Resources:   &specs.LinuxResources{},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
				{Type: specs.NetworkNamespace, Path: o.NetNSPath},
			},
			MaskedPaths:   slices.Clone(masked),
			ReadonlyPaths: slices.Clone(readonly),
		},
		Annotations: map[string]string{},
	}
	o.addResources(s)
	o.addMounts(s, bundleDir)
	for k, v := range o.Annotations {
		s.Annotations[k] = v
	}
	if o.Network != "" {
		s.Annotations[AnnotationNetwork] = o.Network
	}
	if len(o.InitCapabilities) > 0 {
		s.Annotations[AnnotationInitCapabilities] = strings.Join(o.InitCapabilities, ",")
	}
	return s, nil
}

// env is the process environment: the image's, overridden by key with
// o.Env, and PATH, HOME and (with a terminal) TERM where neither set them.
func (o SpecOptions) env(home string) []string {
	env := mergeEnv(o.Image.Env, o.Env)
	if !hasEnv(env, "PATH") {
		env = append([]string{DefaultPath}, env...)
	}
	if !hasEnv(env, "HOME") {
		env = append(env, "HOME="+home)
	}
	if o.Terminal && !hasEnv(env, "TERM") {
		env = append(env, "TERM=xterm")
	}
	return env
}

// capabilities are o.Capabilities in CAP_ form, or Docker's default set.
func (o SpecOptions) capabilities() []string {
	if o.Capabilities == nil {
		return DefaultCapabilities
	}
	caps := make([]string, 0, len(o.Capabilities))
	for _, c := range o.Capabilities {
		c = strings.ToUpper(c)
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		caps = append(caps, c)
	}
	return caps
}

// addResources sets the cgroup limits (CPU quota and shares, memory
// without swap, pids).
func (o SpecOptions) addResources(s *specs.Spec) {
	if o.CPUs > 0 {
		quota, period := int64(o.CPUs*CPUPeriod), uint64(CPUPeriod)
		if o.DeferCPUQuota {
			s.Annotations[AnnotationCPUQuota] = strconv.FormatInt(quota, 10)
			quota = -1 // unlimited until started
		}
		s.Linux.Resources.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
	}
	if o.CPUShares > 0 {
		if s.Linux.Resources.CPU == nil {
			s.Linux.Resources.CPU = &specs.LinuxCPU{}
		}
		shares := o.CPUShares
		s.Linux.Resources.CPU.Shares = &shares
	}
	if o.MemoryBytes > 0 {
		limit, swap := o.MemoryBytes, o.MemoryBytes
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &swap}
	}
	if o.PidsLimit > 0 {
		limit := o.PidsLimit
		s.Linux.Resources.Pids = &specs.LinuxPids{Limit: &limit}
	}
}

// addMounts adds o's bind mounts and the /etc files the bundle provides.
func (o SpecOptions) addMounts(s *specs.Spec, bundleDir string) {
	for _, m := range o.Mounts {
		opts := []string{"rbind", "rprivate"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
	}
	for _, f := range o.etcFiles() {
		s.Mounts = append(s.Mounts, specs.Mount{
			Destination: f.dest, Type: "bind", Source: filepath.Join(bundleDir, f.name),
			Options: []string{"rbind", "rprivate", "ro"},
		})
	}
}

// buildArgs applies Docker's rules: an explicit entrypoint drops the image's
// Cmd; explicit args replace Cmd.
func buildArgs(o SpecOptions) []string {
	entry, cmd := o.Image.Entrypoint, o.Image.Cmd
	if o.Entrypoint != nil {
		entry, cmd = o.Entrypoint, nil
	}
	if len(o.Args) > 0 {
		cmd = o.Args
	}
	return append(slices.Clone(entry), cmd...)
}

// mergeEnv overrides base entries by key, keeping base's order and
// appending new keys in the order given.
func mergeEnv(base, over []string) []string {
	out := slices.Clone(base)
	idx := map[string]int{}
	for i, kv := range out {
		k, _, _ := strings.Cut(kv, "=")
		idx[k] = i
	}
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

func hasEnv(env []string, key string) bool {
	return slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
}

func defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
	}
}

func invalid(field, format string, a ...any) error {
	return fmt.Errorf("%s: %s: %w", field, fmt.Sprintf(format, a...), errdefs.ErrInvalidArgument)
}

func (o SpecOptions) validate(bundleDir string) error {
	if bundleDir == "" || !filepath.IsAbs(bundleDir) {
		return invalid("bundle", "must be an absolute path, got %q", bundleDir)
	}
	if o.RootPath == "" || !filepath.IsAbs(o.RootPath) {
		return invalid("root.path", "must be an absolute path, got %q", o.RootPath)
	}
	if st, err := os.Stat(o.RootPath); err != nil || !st.IsDir() {
		return invalid("root.path", "%q is not a directory", o.RootPath)
	}
	if o.WorkingDir != "" && !filepath.IsAbs(o.WorkingDir) {
		return invalid("workingDir", "must be absolute, got %q", o.WorkingDir)
	}
	for _, kv := range o.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" || strings.ContainsRune(k, 0) {
			return invalid("env", "entry %q: want KEY=VALUE", kv)
		}
	}
	if len(o.Hostname) > 63 || strings.ContainsAny(o.Hostname, " /\n\t") {
		return invalid("hostname", "%q is not a valid hostname", o.Hostname)
	}
	for i, m := range o.Mounts {
		if !filepath.IsAbs(m.Source) {
			return invalid(fmt.Sprintf("mounts[%d].source", i), "must be absolute, got %q", m.Source)
		}
		if !filepath.IsAbs(m.Destination) || filepath.Clean(m.Destination) == "/" {
			return invalid(fmt.Sprintf("mounts[%d].destination", i), "must be an absolute path other than /, got %q", m.Destination)
		}
		if _, err := os.Stat(m.Source); err != nil {
			return invalid(fmt.Sprintf("mounts[%d].source", i), "%q does not exist", m.Source)
		}
	}
	if o.CgroupsPath != "" && (!filepath.IsAbs(o.CgroupsPath) || filepath.Clean(o.CgroupsPath) != o.CgroupsPath || o.CgroupsPath == "/") {
		return invalid("cgroupsPath", "must be a clean absolute path like /pinacle/<id>, got %q", o.CgroupsPath)
	}
	if o.CPUs < 0 || (o.CPUs > 0 && o.CPUs < 0.01) || o.CPUs > 1024 {
		return invalid("cpus", "must be 0 (unlimited) or between 0.01 and 1024, got %v", o.CPUs)
	}
	if o.MemoryBytes < 0 || (o.MemoryBytes > 0 && o.MemoryBytes < MinMemoryBytes) {
		return invalid("memory", "must be 0 (unlimited) or at least %d bytes, got %d", MinMemoryBytes, o.MemoryBytes)
	}
	if o.PidsLimit < 0 {
		return invalid("pidsLimit", "must be >= 0, got %d", o.PidsLimit)
	}
	for _, c := range o.Capabilities {
		if c == "" || strings.ContainsAny(c, " \t") {
			return invalid("capabilities", "bad capability %q", c)
		}
	}
	if o.NetNSPath != "" && !filepath.IsAbs(o.NetNSPath) {
		return invalid("netnsPath", "must be absolute, got %q", o.NetNSPath)
	}
	switch o.Network {
	case "", NetworkSandbox, NetworkNone, NetworkHost:
	default:
		return invalid("network", "must be one of sandbox, none, host; got %q", o.Network)
	}
	return nil
}
