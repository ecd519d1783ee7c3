package pods

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pinacle/pinacle-node/imagestore"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/netns"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/podspec"
	"github.com/pinacle/pinacle-node/portfwd"
	"github.com/pinacle/pinacle-node/rootfs"
	"github.com/pinacle/pinacle-node/snapshots"
	"github.com/pinacle/pinacle-node/templates"
)

// Config wires the manager to the parts it drives. Every field but Logger,
// URLHost, the timeouts, StorageSpares and Rootfs is required.
type Config struct {
	DataRoot  string // pods live in DataRoot/pods/<id>
	Store     *store.Store
	Images    imagestore.Store
	Runtime   oci.Runtime
	Net       netns.Manager
	Ports     portfwd.Forwarder
	Templates *templates.Registry
	// InitBinary is the static pinacle-node binary bind-mounted read-only
	// into every sandbox (`init svc`, `init sync`, the web terminal).
	InitBinary string
	// PodInit is the static pinacle-init binary bind-mounted read-only
	// into every sandbox as its PID 1.
	PodInit string
	Logger  *slog.Logger
	// URLHost is the host printed in port URLs (default 127.0.0.1).
	URLHost string
	// ReadyTimeout caps how long a pod's services may take to become ready
	// on create/start, install steps included (default 15 minutes).
	ReadyTimeout time.Duration
	// StopTimeout is how long init gets to stop the services before the
	// sandbox is killed.
	StopTimeout time.Duration
	// NoPull fails pods whose image is not in the store instead of pulling it.
	NoPull bool
	// GitBaseURL is where githubRepo (owner/repo) is cloned from
	// (default https://github.com).
	GitBaseURL string
	// StorageSpares, when set, supplies pods' capped storage images ready
	// made (optional).
	StorageSpares *rootfs.Spares
	// Rootfs mounts pods' root filesystems (default: rootfs.Host()).
	Rootfs rootfs.Manager
	// Gateway signs and revokes the pods' gateway links (optional: without
	// it URL is ErrUnavailable and views print no gateway URLs).
	Gateway Links
	// IdleTimeout hibernates running pods idle this long whose spec sets
	// no idleTimeout of its own (0: only those that do). See idle.go for
	// what counts as activity.
	IdleTimeout time.Duration
	// SubnetBits is the size of each pod's subnet (network.subnetBits): a
	// wake that must make a lost network again asks for the subnet of the
	// pod's recorded address even when the network's own record is gone.
	SubnetBits int
	// IdleCheck is how often pods are checked for idleness (default 15s,
	// or a third of IdleTimeout when that is shorter).
	IdleCheck time.Duration
	// Snapshots holds template snapshots (optional: without it pods of a
	// template always start cold). docs/snapshots.md.
	Snapshots *snapshots.Store
	// AutoSnapshot snapshots a template once its first cold pod is ready.
	AutoSnapshot bool
	// Warm is the warm sandbox pool (docs/warmpool.md); zero: off.
	// RunWarm fills it.
	Warm WarmConfig
	// CgroupParent is the cgroup every pod's cgroup is made under (v1:
	// under every controller), e.g. /pinacle (the default). Two nodes on
	// one host give each its own, so neither's cleanup touches the other.
	CgroupParent string
}

// Manager implements Service.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu    sync.Mutex
	locks map[string]*podLock // serializes operations per pod

	// bg is the manager's lifetime: background provisioning and watchers
	// run under it and end when Close cancels it.
	bg       context.Context
	cancelBg context.CancelFunc
	wg       sync.WaitGroup

	watchMu  sync.Mutex
	watchers map[string]context.CancelFunc // running pods' sandbox watchers

	status *statusCache // what views show of each pod's services
	execs  *sessions    // open exec and terminal sessions, per pod
	warm   *warmPool    // booted sandboxes that creates claim
}

type podLock struct {
	mu   sync.Mutex
	refs int
}

// New checks cfg and returns a manager. Call Recover before serving.
func New(cfg Config) (*Manager, error) {
	switch {
	case cfg.DataRoot == "":
		return nil, fmt.Errorf("pods: DataRoot is required: %w", errdefs.ErrInvalidArgument)
	case cfg.Store == nil, cfg.Images == nil, cfg.Runtime == nil, cfg.Net == nil, cfg.Ports == nil, cfg.Templates == nil:
		return nil, fmt.Errorf("pods: Store, Images, Runtime, Net, Ports and Templates are required: %w", errdefs.ErrInvalidArgument)
	case cfg.InitBinary == "", cfg.PodInit == "":
		return nil, fmt.Errorf("pods: InitBinary and PodInit are required: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Rootfs == nil {
		cfg.Rootfs = rootfs.Host()
	}
	if cfg.GitBaseURL == "" {
		cfg.GitBaseURL = "https://github.com"
	}
	if cfg.URLHost == "" {
		cfg.URLHost = "127.0.0.1"
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = DefaultCgroupParent
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 15 * time.Minute // install steps (npm, pip) can be slow
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 15 * time.Second
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataRoot, "pods"), 0o711); err != nil {
		return nil, fmt.Errorf("pods: %w", err)
	}
	bg, cancel := context.WithCancel(context.Background())
	m := &Manager{
		cfg:      cfg,
		log:      cfg.Logger,
		locks:    map[string]*podLock{},
		bg:       bg,
		cancelBg: cancel,
		watchers: map[string]context.CancelFunc{},
		status:   newStatusCache(),
		execs:    newSessions(),
		warm:     newWarmPool(cfg.Warm),
	}
	m.wg.Add(1)
	go m.idleLoop()
	return m, nil
}

// Close stops background work. Sandboxes keep running: the next manager
// adopts them (Recover).
func (m *Manager) Close() {
	m.cancelBg()
	m.wg.Wait()
}

// lock serializes operations on one pod; different pods run in parallel.
func (m *Manager) lock(id string) func() {
	m.mu.Lock()
	l := m.locks[id]
	if l == nil {
		l = &podLock{}
		m.locks[id] = l
	}
	l.refs++
	m.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		m.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(m.locks, id)
		}
		m.mu.Unlock()
	}
}

// podStatus is what the manager records about a pod's runtime (the
// store keeps it opaque).
type podStatus struct {
	Image       string               `json:"image,omitempty"`       // resolved reference
	ImageDigest string               `json:"imageDigest,omitempty"` // manifest digest
	IP          string               `json:"ip,omitempty"`
	NetnsPath   string               `json:"netnsPath,omitempty"`
	Ports       []portfwd.Allocation `json:"ports,omitempty"`
	Restarts    int                  `json:"restarts,omitempty"` // sandbox restarts after deaths
	LastExit    *oci.ExitInfo        `json:"lastExit,omitempty"`
}

// readStatus decodes the pod's runtime record.
func readStatus(p *store.Pod) (podStatus, error) {
	var st podStatus
	if len(p.Status) > 0 {
		if err := json.Unmarshal(p.Status, &st); err != nil {
			return podStatus{}, fmt.Errorf("pod %s: stored status: %w", p.ID, err)
		}
	}
	return st, nil
}

// decodeStatus is readStatus for views, which show a record they cannot
// read as empty: the operations (statusOf) report it.
func decodeStatus(p *store.Pod) podStatus {
	st, _ := readStatus(p)
	return st
}

// statusOf is the pod's runtime record for an operation. An unreadable
// one is reported as an event and taken as empty, so the operation
// writes a sound one again instead of leaving the pod stuck.
func (m *Manager) statusOf(ctx context.Context, p *store.Pod) podStatus {
	st, err := readStatus(p)
	if err != nil {
		m.event(ctx, p.ID, "warning", "StatusUnreadable", err.Error()+"; taken as empty")
	}
	return st
}

func decodeSpec(p *store.Pod) (*podspec.Pod, error) {
	var s podspec.Pod
	if err := json.Unmarshal(p.Spec, &s); err != nil {
		return nil, fmt.Errorf("pod %s: stored spec: %w", p.ID, err)
	}
	return &s, nil
}

func (m *Manager) podDir(id string) string { return filepath.Join(m.cfg.DataRoot, "pods", id) }

func newID() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return "p" + hex.EncodeToString(b[:])
}

// event appends a non-state event; failures are logged, never fatal.
func (m *Manager) event(ctx context.Context, id, typ, reason, msg string) {
	if _, err := m.cfg.Store.AppendEvent(context.WithoutCancel(ctx), store.Event{PodID: id, Type: typ, Reason: reason, Message: msg}); err != nil {
		m.log.Warn("recording event", "pod", id, "type", typ, "err", err)
	}
}
