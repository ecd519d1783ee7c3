package netns

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/iptables"
)

// Manager gives pods their network and takes it away again.
type Manager interface {
	// Setup creates the pod's namespace and network. On failure everything
	// it did is undone. A pod that already has a network is ErrAlreadyExists.
	Setup(ctx context.Context, spec Spec) (*Attachment, error)
	// Teardown undoes Setup from persisted state only (it works after a
	// daemon restart), tolerates anything already gone, and is idempotent.
	Teardown(ctx context.Context, podID string) error
	// Remake tears down what is left of the pod's network (a reboot took
	// its namespace) and sets it up again on the subnet its record names
	// (else spec.Subnet), which stays reserved throughout: no other
	// network, a warm pool entry's say, can take it in between.
	Remake(ctx context.Context, spec Spec) (*Attachment, error)
	// RestoreAddress puts the pod's address and default route back on its
	// interface (runsc strips them); call it before runsc restore.
	RestoreAddress(ctx context.Context, podID string) error
	// Get returns a pod's attachment, or ErrNotFound.
	Get(ctx context.Context, podID string) (*Attachment, error)
	// List returns every attachment this manager holds.
	List(ctx context.Context) ([]*Attachment, error)
	// RemoveNodeRules deletes the node-level iptables chains (and the warm
	// pool's unclaimed entries); it refuses with ErrConflict while pods
	// still have networks.
	RemoveNodeRules(ctx context.Context) error
	// RunWarmPool keeps WithWarmPool's number of default networks ready
	// until ctx ends, then tears the unclaimed ones down. Setup takes one
	// for a pod with the default network instead of making it. Without
	// WithWarmPool it only waits for ctx.
	RunWarmPool(ctx context.Context) error
	// DrainWarmPool tears down every unclaimed warm entry, including any
	// an earlier process left behind.
	DrainWarmPool(ctx context.Context) error
	// ResumeDNSFilters starts the DNS filter (Policy.Domains) of every
	// pod network that has one and whose filter is not running in this
	// process: call it once after a daemon restart. Setup starts the
	// filters of new networks itself; Teardown stops them.
	ResumeDNSFilters(ctx context.Context) error
}

type manager struct {
	config
	cni      *libcni.CNIConfig
	iptMu    sync.Mutex // serialises read-modify-write of our iptables chains
	podLocks sync.Map   // pod ID -> *sync.Mutex
	// nodeChains is set once the node chains are known to be installed,
	// so later Setups skip the iptables-save that checks for them (an exec
	// per Setup). If someone removes them behind our back the restore fails
	// on the missing jump target and we check again. Guarded by iptMu.
	nodeChains bool

	filtMu  sync.Mutex
	filters map[string]*dnsFilter // pod ID -> its running DNS filter

	staleOnce sync.Once // killStalePlugins

	warmMu    sync.Mutex
	warmReady []string      // warm entry IDs ready to claim, oldest first
	warmKick  chan struct{} // a claim happened: refill
}

var _ Manager = (*manager)(nil)

// New returns a Manager. It creates its state directories but touches no
// network state until Setup.
func New(opts ...Option) (Manager, error) {
	c := defaults()
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{c.stateDir, c.podsDir(), c.ipamDir(), c.cacheDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("netns state: %w", err)
		}
	}
	if c.store == nil {
		c.store = newMemSubnetStore(c.pool, c.subnetBits)
	}
	return &manager{
		config: c,
		// An explicit exec: libcni otherwise creates one lazily, without
		// a lock, on first use by each concurrent Setup (a data race).
		cni: libcni.NewCNIConfigWithCacheDir(c.pluginDirs, c.cacheDir(), &invoke.DefaultExec{
			RawExec:       &invoke.RawExec{Stderr: os.Stderr},
			PluginDecoder: version.PluginDecoder{},
		}),
		warmKick: make(chan struct{}, 1),
		filters:  map[string]*dnsFilter{},
	}, nil
}

func (c *config) podsDir() string  { return filepath.Join(c.stateDir, "pods") }
func (c *config) ipamDir() string  { return filepath.Join(c.stateDir, "ipam") }
func (c *config) cacheDir() string { return filepath.Join(c.stateDir, "cni-cache") }
func (c *config) nodeForward() string {
	return c.chainPrefix + "-FORWARD"
}
func (c *config) nodeInput() string { return c.chainPrefix + "-INPUT" }

func (m *manager) lock(podID string) func() {
	v, _ := m.podLocks.LoadOrStore(podID, &sync.Mutex{})
	mu := v.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// names fills in every host-side name of a pod deterministically, so that
// Teardown can find them from the pod ID and the manager's prefixes alone.
func (m *manager) names(podID string, mode Mode) *Attachment {
	sum := sha256.Sum256([]byte(m.netnsPrefix + podID))
	h := hex.EncodeToString(sum[:])
	a := &Attachment{
		PodID:     podID,
		Mode:      mode,
		NetnsName: m.netnsPrefix + podID,
	}
	a.NetnsPath = filepath.Join(m.netnsDir, a.NetnsName)
	if mode == ModeNone {
		return a
	}
	a.Interface = "eth0"
	a.Bridge = m.bridgePrefix + h[:15-len(m.bridgePrefix)]
	a.Network = a.NetnsName
	a.ContainerID = a.NetnsName
	a.EgressChain = m.chainPrefix + "-" + h[:12] + "-E"
	a.HostChain = m.chainPrefix + "-" + h[:12] + "-H"
	a.MasqChain = m.chainPrefix + "-" + h[:12] + "-M"
	a.IfbDevice = hashName(15, "bwp", a.Network+a.ContainerID)
	return a
}

func (m *manager) recordPath(podID string) string {
	return filepath.Join(m.podsDir(), podID+".json")
}

func (m *manager) Get(_ context.Context, podID string) (*Attachment, error) {
	if err := errdefs.ValidateID("pod", podID); err != nil {
		return nil, err
	}
	return m.load(podID)
}

func (m *manager) List(_ context.Context) ([]*Attachment, error) {
	ids, err := m.recordIDs()
	if err != nil {
		return nil, err
	}
	var out []*Attachment
	for _, id := range ids {
		if IsWarm(id) {
			continue
		}
		a, err := m.load(id)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PodID < out[j].PodID })
	return out, nil
}

func (m *manager) Setup(ctx context.Context, spec Spec) (*Attachment, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	defer m.lock(spec.PodID)()
	if _, err := os.Stat(m.recordPath(spec.PodID)); err == nil {
		return nil, fmt.Errorf("pod %s network: %w", spec.PodID, errdefs.ErrAlreadyExists)
	}
	if m.warmSize > 0 && !IsWarm(spec.PodID) && poolable(spec) {
		if a := m.claim(ctx, spec); a != nil {
			return a, nil
		}
	}
	return m.setup(ctx, spec, "")
}

func (m *manager) Remake(ctx context.Context, spec Spec) (*Attachment, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	defer m.lock(spec.PodID)()
	owner := spec.PodID
	if a, err := m.load(spec.PodID); err == nil && a.Mode != ModeNone {
		if a.SubnetOwner != "" {
			owner = a.SubnetOwner // a claimed warm entry's reservation
		}
		spec.Subnet = a.Subnet
	}
	if err := m.teardownKeep(ctx, spec.PodID, true); err != nil {
		return nil, err
	}
	return m.setup(ctx, spec, owner)
}

// setup makes the pod's network (Setup without the checks and the warm
// pool); owner, when set, holds the subnet reservation already.
func (m *manager) setup(ctx context.Context, spec Spec, owner string) (_ *Attachment, retErr error) {
	mode := spec.Policy.mode()
	a := m.names(spec.PodID, mode)
	if owner != spec.PodID {
		a.SubnetOwner = owner
	}
	a.Hostname = spec.Hostname
	if a.Hostname == "" {
		a.Hostname = spec.PodID
	}
	log := m.log.With("pod", spec.PodID)

	if mode != ModeNone {
		if err := m.plan(ctx, spec, a); err != nil {
			return nil, err
		}
	}
	// The record goes down before any side effect: from here on a crash
	// leaves something Teardown can find and undo.
	if err := m.writeRecord(spec.PodID, a); err != nil {
		return nil, errors.Join(err, m.releaseSubnet(ctx, cmp.Or(a.SubnetOwner, spec.PodID)))
	}
	defer func() {
		if retErr != nil {
			// Undo with a fresh context: the caller's may be what failed.
			if err := m.teardown(context.WithoutCancel(ctx), a.PodID); err != nil {
				log.Warn("undo failed setup", "err", err)
				retErr = errors.Join(retErr, fmt.Errorf("undo: %w", err))
			}
		}
	}()

	if _, err := createNamedNS(m.netnsDir, a.NetnsName); err != nil {
		return nil, fmt.Errorf("pod %s: %w", spec.PodID, err)
	}
	if err := prepareNS(a.NetnsPath); err != nil {
		return nil, fmt.Errorf("pod %s: %w", spec.PodID, err)
	}
	if mode == ModeNone {
		log.Debug("network ready", "mode", mode, "netns", a.NetnsPath)
		return a, nil
	}

	if err := m.cniAdd(ctx, a); err != nil {
		return nil, fmt.Errorf("pod %s: %w", spec.PodID, err)
	}
	if err := disableIPv6(a.Bridge); err != nil {
		return nil, fmt.Errorf("pod %s: bridge %s: %w", spec.PodID, a.Bridge, err)
	}
	if err := m.installChains(ctx, a, spec.Policy); err != nil {
		return nil, fmt.Errorf("pod %s: %w", spec.PodID, err)
	}
	if a.DomainChain != "" {
		if err := m.startDNSFilter(a, nil); err != nil {
			return nil, fmt.Errorf("pod %s: %w", spec.PodID, err)
		}
	}
	if err := m.writeRecord(spec.PodID, a); err != nil {
		return nil, err
	}
	log.Debug("network ready", "ip", a.IP, "bridge", a.Bridge, "netns", a.NetnsPath)
	return a, nil
}

// plan fills in what a network that is not ModeNone needs before any side
// effect: resolvers (the host's unless the spec names some), a subnet
// reserved in the store and the CNI conflist. On failure the reservation
// is released again.
func (m *manager) plan(ctx context.Context, spec Spec, a *Attachment) error {
	a.DNS = spec.DNS
	if spec.Policy.mode() == ModeNoEgress {
		a.DNS.Nameservers = nil // the pod may send no DNS: no resolver to time out on
	} else if len(a.DNS.Nameservers) == 0 {
		host, err := m.hostDNS()
		if err != nil {
			return fmt.Errorf("pod %s: host resolvers: %w", spec.PodID, err)
		}
		a.DNS.Nameservers = host.Nameservers
		if a.DNS.Search == nil {
			a.DNS.Search = host.Search
		}
		if a.DNS.Options == nil {
			a.DNS.Options = host.Options
		}
	}
	routes, err := hostRoutes(m.bridgePrefix)
	if err != nil {
		return err
	}
	owner := spec.PodID
	if a.SubnetOwner != "" {
		owner = a.SubnetOwner // Remake: the same reservation, kept
	}
	sub, err := m.store.Reserve(ctx, owner, spec.Subnet, routes)
	if err != nil {
		return fmt.Errorf("pod %s: %w", spec.PodID, err)
	}
	a.Subnet = sub
	a.Gateway = gatewayOf(sub)
	a.PrefixLen = sub.Bits()
	if len(spec.Policy.Domains) > 0 {
		// The pod's one resolver is the node's filter on its gateway.
		a.Domains = slices.Clone(spec.Policy.Domains)
		a.Upstreams = a.DNS.Nameservers
		a.DNS.Nameservers = []netip.Addr{a.Gateway}
		a.DomainChain = strings.TrimSuffix(a.EgressChain, "-E") + "-D"
	}
	if a.ConfList, err = confList(a, m.ipamDir(), spec.Bandwidth); err != nil {
		return errors.Join(err, m.releaseSubnet(ctx, owner))
	}
	return nil
}

// cniAdd runs the conflist's ADD in a's namespace and records the address
// and gateway it gave.
func (m *manager) cniAdd(ctx context.Context, a *Attachment) error {
	list, err := libcni.NetworkConfFromBytes(a.ConfList)
	if err != nil {
		return err
	}
	m.killStalePlugins(ctx)
	res, err := m.cni.AddNetworkList(ctx, list, m.runtimeConf(a, a.NetnsPath))
	if err != nil {
		return fmt.Errorf("cni add: %w", err)
	}
	r, err := current.NewResultFromResult(res)
	if err != nil {
		return fmt.Errorf("cni result: %w", err)
	}
	if len(r.IPs) == 0 {
		return fmt.Errorf("cni add returned no address")
	}
	p, _ := ipNetToPrefix(&r.IPs[0].Address)
	a.IP, _ = netip.AddrFromSlice(r.IPs[0].Address.IP.To4())
	a.PrefixLen = p.Bits()
	if gw, ok := netip.AddrFromSlice(r.IPs[0].Gateway.To4()); ok {
		a.Gateway = gw
	}
	return nil
}

func (m *manager) runtimeConf(a *Attachment, nsPath string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: a.ContainerID, NetNS: nsPath, IfName: a.Interface}
}

func (m *manager) installChains(ctx context.Context, a *Attachment, p Policy) error {
	m.iptMu.Lock()
	defer m.iptMu.Unlock()
	var extra []netip.Prefix
	if !m.pool.Overlaps(PrivateRanges[0]) && !m.pool.Overlaps(PrivateRanges[1]) && !m.pool.Overlaps(PrivateRanges[2]) && !m.pool.Overlaps(PrivateRanges[3]) {
		extra = append(extra, m.pool) // a public pool: other pods are not covered by the private ranges
	}
	pod := podChainLines(a, p, m.nodeForward(), m.nodeInput(), extra)
	if m.nodeChains {
		err := iptables.Restore(ctx, map[string][]string{"filter": pod, "nat": masqLines(a)})
		if err == nil {
			return nil
		}
		m.nodeChains = false // gone behind our back? check and retry once
	}
	dump, err := iptables.Save(ctx, "-t", "filter")
	if err != nil {
		return err
	}
	lines := append(nodeChainLines(dump, m.nodeForward(), m.nodeInput(), m.bridgePrefix+"+"), pod...)
	if err := iptables.Restore(ctx, map[string][]string{"filter": lines, "nat": masqLines(a)}); err != nil {
		return err
	}
	m.nodeChains = true
	return nil
}

func (m *manager) RestoreAddress(_ context.Context, podID string) error {
	if err := errdefs.ValidateID("pod", podID); err != nil {
		return err
	}
	defer m.lock(podID)()
	a, err := m.load(podID)
	if err != nil {
		return err
	}
	if a.Mode == ModeNone {
		return nil
	}
	if !a.IP.IsValid() {
		return fmt.Errorf("pod %s: network setup never finished: %w", podID, errdefs.ErrNotFound)
	}
	if err := restoreAddr(a.NetnsPath, a.Interface, a.Prefix(), a.Gateway); err != nil {
		return fmt.Errorf("pod %s: %w", podID, err)
	}
	return nil
}

// releaseSubnet undoes a subnet reservation for a Setup that failed before
// writing its record (without a record, Teardown would not find it). It
// runs on a fresh context: the caller's may be what failed.
func (m *manager) releaseSubnet(ctx context.Context, podID string) error {
	if err := m.store.Release(context.WithoutCancel(ctx), podID); err != nil {
		return fmt.Errorf("undo: release subnet: %w", err)
	}
	return nil
}
