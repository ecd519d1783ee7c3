package oci

import (
	"context"
	"os"
	"syscall"
	"time"
)

// Runtime is the typed runsc API. Every method that does I/O takes ctx
// first; calls run under ctx's deadline (or the runtime's default timeout,
// except Wait and a non-detached Exec, which last as long as the process)
// and runsc is killed, with its process group, when ctx ends.
type Runtime interface {
	// Create creates the container (and its sandbox) from bundle without
	// starting the user process.
	Create(ctx context.Context, id, bundle string, opts CreateOpts) error
	Start(ctx context.Context, id string) error
	// Run is Create, Start and Wait; the caller still Deletes.
	Run(ctx context.Context, id, bundle string, opts CreateOpts) (ExitInfo, error)
	State(ctx context.Context, id string) (State, error)
	List(ctx context.Context) ([]State, error)
	// Exec runs a process in the container and returns its exit code
	// (0 and no error when Detach is set).
	Exec(ctx context.Context, id string, opts ExecOpts) (int, error)
	// Kill signals the init process, or every process when all is set.
	Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error
	// Wait blocks until the container's init process exits and reports how.
	Wait(ctx context.Context, id string) (ExitInfo, error)
	// Delete removes the container; force kills it first. Deleting a
	// container that does not exist is ErrNotFound; the cgroup is removed.
	Delete(ctx context.Context, id string, force bool) error
	Checkpoint(ctx context.Context, id string, opts CheckpointOpts) error
	// Restore creates the container from bundle and a checkpoint image.
	Restore(ctx context.Context, id, bundle string, opts RestoreOpts) error
	Stats(ctx context.Context, id string) (Stats, error)
	// KillStale kills the runsc invocations for id that an earlier process
	// of this node left running when it died (a create or restore cut
	// short), so that recovery does not race them, and, when runsc has no
	// state for id, the sandbox and gofer such a runsc left (only their
	// command lines name the pod) and its lock file.
	KillStale(ctx context.Context, id string) error
}

// Network modes (runsc --network).
const (
	NetworkSandbox = "sandbox" // gVisor's netstack in the spec's netns
	NetworkNone    = "none"    // loopback only
	NetworkHost    = "host"    // the host's stack (weaker isolation)
)

// Status of a container, as runsc reports it.
type Status string

const (
	StatusCreated Status = "created"
	StatusRunning Status = "running"
	StatusPaused  Status = "paused"
	StatusStopped Status = "stopped"
)

// State is runsc's view of a container.
type State struct {
	ID      string    `json:"id"`
	Status  Status    `json:"status"`
	Pid     int       `json:"pid"`
	Bundle  string    `json:"bundle"`
	Created time.Time `json:"created,omitzero"`
}

// ExitInfo is how a container's init process ended.
type ExitInfo struct {
	// Code is the exit status, or 128+signal when killed by a signal.
	Code int `json:"code"`
	// Signal is set when the process (or the sandbox) died from a signal.
	Signal syscall.Signal `json:"signal,omitempty"`
	// OOMKilled is set when the pod's memory cgroup hit its limit and the
	// kernel OOM killer fired in it (which kills the sandbox itself).
	OOMKilled bool `json:"oomKilled,omitempty"`
	// Unknown is set when the sandbox has exited but its status could not
	// be learned: it was not our child (adopted after a daemon restart),
	// so nobody here could reap it. Code is then -1.
	Unknown bool `json:"unknown,omitempty"`
}

// CreateOpts are the per-container options of Create, Run and Restore.
type CreateOpts struct {
	// Stdin, Stdout, Stderr become the container's stdio: the sandbox
	// inherits runsc's, so these must be files (a log file, a pty slave,
	// /dev/null), never pipes. Nil means /dev/null.
	Stdin, Stdout, Stderr *os.File
	// ConsoleSocket receives the pty master when the spec asks for a terminal.
	ConsoleSocket string
	// PidFile, if set, receives the sandbox's host pid.
	PidFile string
	// Network overrides the runtime's network mode for this sandbox.
	Network string
	// Start starts the container's process too (`runsc run --detach`):
	// one runsc exec instead of two (docs/runtime.md has the saving).
	Start bool
}

// ExecOpts describe a process to run in a container.
type ExecOpts struct {
	Args []string
	// Env entries override the container's environment by key.
	Env []string
	// Cwd defaults to the container's.
	Cwd string
	// User is "uid" or "uid:gid"; default the container's user.
	User           string
	AdditionalGids []uint32
	// Tty marks the process's stdio as a terminal: pass a pty slave (from
	// github.com/creack/pty.Open) as Stdin/Stdout/Stderr; runsc gets it as
	// its controlling terminal so ^C and resizes reach the process.
	Tty bool
	// Stdin, Stdout, Stderr: files only (see CreateOpts); nil is /dev/null.
	Stdin, Stdout, Stderr *os.File
	ConsoleSocket         string
	// Detach returns once the process started.
	Detach  bool
	PidFile string
	// AddCaps are capabilities ("CAP_" form) the process gets beyond the
	// container's (a warm sandbox's claim sets the pod's hostname).
	AddCaps []string
}

// CheckpointOpts for Checkpoint.
type CheckpointOpts struct {
	ImagePath string
	// LeaveRunning keeps the sandbox running after the checkpoint.
	LeaveRunning bool
	// Compress uses flate-best-speed instead of an uncompressed image.
	Compress bool
}

// RestoreOpts for Restore. The sandbox is always detached.
type RestoreOpts struct {
	CreateOpts
	ImagePath string
}

// Stats is a snapshot of a container's resource use.
type Stats struct {
	CPUUsageNanos    uint64 `json:"cpuUsageNanos"`
	MemoryUsage      uint64 `json:"memoryUsage"`
	MemoryLimit      uint64 `json:"memoryLimit"`
	MemoryMaxUsage   uint64 `json:"memoryMaxUsage,omitempty"`
	MemoryFailCount  uint64 `json:"memoryFailCount"`
	Pids             uint64 `json:"pids"`
	PidsLimit        uint64 `json:"pidsLimit,omitempty"`
	OOMKills         uint64 `json:"oomKills"`
	UnderOOM         bool   `json:"underOOM,omitempty"`
	CgroupsAvailable bool   `json:"cgroupsAvailable"`
}
