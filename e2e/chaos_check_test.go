package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pinacle/pinacle-node/internal/leakcheck"
	"github.com/pinacle/pinacle-node/internal/store"
)

// This file holds the chaos test's checks beyond what the API shows: the
// allocations in state.db, read while the daemon is dead, and the host
// resources of a settled node, each of which must belong to a live pod.

// checkDead reads state.db between a kill and the restart: every port set
// and subnet belongs to a pod record (or a warm network), lies in the
// daemon's range or pool, and overlaps no other; a warm network the
// previous restart found must be gone (the daemon replaces leftovers).
func (c *chaos) checkDead() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, filepath.Join(c.d.dir, "data", "state.db"), store.WithLockTimeout(10*time.Second))
	if err != nil {
		return fmt.Errorf("state.db after the kill: %w", err)
	}
	defer st.Close()
	recs, err := st.ListPods(ctx)
	if err != nil {
		return err
	}
	sets, err := st.PortSets(ctx)
	if err != nil {
		return err
	}
	subnets, err := st.ListSubnets(ctx)
	if err != nil {
		return err
	}
	pods := map[string]bool{}
	for _, p := range recs {
		pods[p.ID] = true
		c.seen[p.ID] = true
	}
	held := map[int]string{}
	for _, s := range sets {
		if !pods[s.PodID] {
			return fmt.Errorf("state.db: port set of %s, which has no pod record", s.PodID)
		}
		for _, b := range s.Bindings {
			if b.HostPort < c.d.portMin || b.HostPort > c.d.portMax {
				return fmt.Errorf("state.db: %s's port %s on host port %d, outside %d-%d", s.PodID, b.Key, b.HostPort, c.d.portMin, c.d.portMax)
			}
			if o, dup := held[b.HostPort]; dup {
				return fmt.Errorf("state.db: host port %d held by %s and %s", b.HostPort, o, s.PodID)
			}
			held[b.HostPort] = s.PodID
		}
	}
	// A pod that claimed a warm network keeps the entry's ID as its
	// subnet's owner (netns/pool.go): that reservation is the pod's.
	netRecs, err := c.netRecords()
	if err != nil {
		return err
	}
	claimed := map[string]bool{}
	for id, r := range netRecs {
		if !strings.HasPrefix(id, "warm-") && r.SubnetOwner != "" {
			claimed[r.SubnetOwner] = true
		}
	}
	pool := netip.MustParsePrefix(c.d.pool)
	warm := map[string]bool{}
	for i, s := range subnets {
		switch {
		case strings.HasPrefix(s.PodID, "warm-") && claimed[s.PodID]:
		case strings.HasPrefix(s.PodID, "warm-"):
			if c.warm[s.PodID] {
				return fmt.Errorf("state.db: warm network %s's subnet %s outlived a restart", s.PodID, s.Prefix)
			}
			warm[s.PodID] = true
		case !pods[s.PodID]:
			return fmt.Errorf("state.db: subnet %s of %s, which has no pod record", s.Prefix, s.PodID)
		}
		if !pool.Contains(s.Prefix.Addr()) || s.Prefix.Bits() < pool.Bits() {
			return fmt.Errorf("state.db: subnet %s of %s outside the pool %s", s.Prefix, s.PodID, pool)
		}
		for _, o := range subnets[i+1:] {
			if o.Prefix.Overlaps(s.Prefix) {
				return fmt.Errorf("state.db: subnet %s of %s overlaps %s of %s", s.Prefix, s.PodID, o.Prefix, o.PodID)
			}
		}
	}
	c.warm = warm
	c.deadChecks++
	return nil
}

// errChanged says a pod changed state while the host was being looked
// at (a failed pod's restart began): the check runs again.
var errChanged = errors.New("a pod changed state during the check")

// checkHost holds the host to the settled pods listed in before: host
// ports stable per pod and listening, a sandbox for every running pod,
// and every network record, mount, sandbox or gofer process and address
// in the daemon's pool belonging to a pod that should have it.
func (c *chaos) checkHost(before []podView) error {
	for _, p := range before {
		if !slices.Contains([]string{"running", "stopped", "failed", "hibernated"}, p.State) {
			return errChanged
		}
	}
	if err := c.checkPorts(before); err != nil {
		return err
	}
	// Network records are read on both sides of the snapshot: a warm
	// network made or torn down meanwhile owns what the snapshot caught.
	recsBefore, err := c.netRecords()
	if err != nil {
		return err
	}
	snap := leakcheck.Probe{
		Filter: []string{c.d.dir, c.poolPrefix(), "/pinacle/"},
		Procs:  []string{c.d.dir + "/runsc"},
	}.Take(context.Background())
	if err := snap.Err(); err != nil {
		return err
	}
	recs, err := c.netRecords()
	if err != nil {
		return err
	}
	runsc, err := c.runscIDs()
	if err != nil {
		return err
	}
	after, err := c.list()
	if err != nil {
		return err
	}
	if !sameStates(before, after) {
		return errChanged
	}
	for id, r := range recsBefore {
		if _, ok := recs[id]; !ok && strings.HasPrefix(id, "warm-") {
			recs[id] = r
		}
	}
	// A warm network being made has its record before its subnet (CNI
	// ADD assigns it): its bridge's address belongs to it, but the
	// record cannot say so yet.
	for id, r := range recs {
		if strings.HasPrefix(id, "warm-") && !r.Subnet.IsValid() {
			return errChanged
		}
	}
	return c.attribute(before, snap, recs, runsc)
}

func sameStates(a, b []podView) bool {
	key := func(ps []podView) []string {
		var k []string
		for _, p := range ps {
			k = append(k, p.ID+"="+p.State)
		}
		slices.Sort(k)
		return k
	}
	return slices.Equal(key(a), key(b))
}

// checkPorts: a pod keeps its host ports until it is deleted (they are
// stable per pod and port name), and the forwarder listens on those of
// running and hibernated pods, and only on those.
func (c *chaos) checkPorts(pods []podView) error {
	listening, err := listeningPorts()
	if err != nil {
		return err
	}
	now := map[string]string{}
	for _, p := range pods {
		c.seen[p.ID] = true
		var ports []string
		for _, pt := range p.Ports {
			if pt.External == 0 {
				continue
			}
			ports = append(ports, fmt.Sprintf("%s=%d", pt.Name, pt.External))
			// Running and hibernated pods' ports listen (a connection to
			// a hibernated one wakes it); a stop, and a failure's undo
			// (a sandbox's death's too), close them and keep the
			// allocation.
			serving := p.State == "running" || p.State == "hibernated"
			if serving != listening[pt.External] {
				return fmt.Errorf("pod %s (%s %s) holds host port %d: listening %v", p.Name, p.ID, p.State, pt.External, listening[pt.External])
			}
		}
		if len(ports) == 0 {
			continue
		}
		got := strings.Join(ports, ",")
		if had, ok := c.ports[p.ID]; ok && had != got {
			return fmt.Errorf("pod %s's host ports changed from %s to %s without a delete", p.Name, had, got)
		}
		now[p.ID] = got
	}
	c.ports = now
	return nil
}

// listeningPorts reads the TCP ports in LISTEN state from /proc/net/tcp.
func listeningPorts() (map[int]bool, error) {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return nil, err
	}
	out := map[int]bool{}
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 4 || f[3] != "0A" {
			continue
		}
		_, hexPort, _ := strings.Cut(f[1], ":")
		if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil {
			out[int(p)] = true
		}
	}
	return out, nil
}

// netRecord is the part of the network layer's record (netns/<id>.json)
// the checks read.
type netRecord struct {
	PodID       string       `json:"podID"`
	Subnet      netip.Prefix `json:"subnet"`
	SubnetOwner string       `json:"subnetOwner"`
}

func (c *chaos) netRecords() (map[string]netRecord, error) {
	files, err := filepath.Glob(filepath.Join(c.d.dir, "data", "netns", "pods", "*.json"))
	if err != nil {
		return nil, err
	}
	out := map[string]netRecord{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue // a warm entry claimed (renamed) meanwhile
		}
		var r netRecord
		if err == nil {
			err = json.Unmarshal(b, &r)
		}
		if err != nil {
			return nil, fmt.Errorf("network record %s: %w", f, err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = r
	}
	return out, nil
}

func (c *chaos) poolPrefix() string {
	a := netip.MustParsePrefix(c.d.pool).Addr().As4()
	return fmt.Sprintf("%d.%d.", a[0], a[1])
}

var (
	podDirRE = regexp.MustCompile(`/data/pods/([^/ ]+)`)
	cgroupRE = regexp.MustCompile(`/pinacle/([^/]+)$`)
	bootRE   = regexp.MustCompile(` boot .* (\S+)$`)
	addrRE   = regexp.MustCompile(`\b(\d+\.\d+\.\d+\.\d+)(/\d+)?\b`)
)

// attribute finds, in the host snapshot, what belongs to no pod that
// should have it: a network record of a pod that is not running or
// hibernated, a mount of such a pod, a sandbox or gofer process of a pod
// that is not running, a cgroup of a pod of this daemon that is not
// running, an address, route or iptables rule in the pool
// outside every live network's subnet, and a runsc container of no
// running pod (or a running pod without one: not adopted).
func (c *chaos) attribute(pods []podView, snap leakcheck.Snapshot, recs map[string]netRecord, runsc []string) error {
	state := map[string]string{}
	for _, p := range pods {
		state[p.ID] = p.State
	}
	live := func(id string, states ...string) bool {
		return strings.HasPrefix(id, "warm-") || slices.Contains(states, state[id])
	}
	var subnets []netip.Prefix
	for id, r := range recs {
		// A failed pod has been brought down like a stopped one (after a
		// sandbox's death, once settle's convergence allows).
		if !live(id, "running", "hibernated") {
			return fmt.Errorf("network record of %s, which is %q", id, state[id])
		}
		subnets = append(subnets, r.Subnet)
	}
	for _, p := range pods {
		if (p.State == "running" || p.State == "hibernated") && recs[p.ID].PodID == "" {
			return fmt.Errorf("pod %s is %s without a network record", p.Name, p.State)
		}
		if p.State == "running" && !slices.Contains(runsc, p.ID) {
			return fmt.Errorf("pod %s is running without a sandbox (not adopted)", p.Name)
		}
	}
	for _, l := range snap["mount"] {
		if m := podDirRE.FindStringSubmatch(l); m != nil && !live(m[1], "running", "hibernated") {
			return fmt.Errorf("mount of %s, which is %q: %s", m[1], state[m[1]], l)
		}
	}
	for _, l := range snap["process"] {
		id := ""
		if m := podDirRE.FindStringSubmatch(l); m != nil {
			id = m[1]
		} else if m := bootRE.FindStringSubmatch(l); m != nil {
			id = m[1]
		}
		if id != "" && !live(id, "running") {
			return fmt.Errorf("process of %s, which is %q: %s", id, state[id], l)
		}
	}
	// Cgroups are named by pod ID alone: only the IDs this daemon had
	// are its own.
	for _, l := range snap["cgroup"] {
		if m := cgroupRE.FindStringSubmatch(l); m != nil && c.seen[m[1]] && !live(m[1], "running") {
			return fmt.Errorf("cgroup of %s, which is %q: %s", m[1], state[m[1]], l)
		}
	}
	for _, kind := range []string{"addr", "route", "iptables"} {
		for _, l := range snap[kind] {
			if a := c.strayAddr(l, subnets); a != "" {
				return fmt.Errorf("%s %s in no live network's subnet: %s", kind, a, l)
			}
		}
	}
	return nil
}

// strayAddr returns the first address of the daemon's pool in line that
// no subnet in live holds ("" if none); the pool itself (node-wide rules)
// is not one.
func (c *chaos) strayAddr(line string, live []netip.Prefix) string {
	pool := netip.MustParsePrefix(c.d.pool)
	for _, m := range addrRE.FindAllStringSubmatch(line, -1) {
		a, err := netip.ParseAddr(m[1])
		if err != nil || !pool.Contains(a) || m[0] == pool.String() {
			continue
		}
		if !slices.ContainsFunc(live, func(p netip.Prefix) bool { return p.Contains(a) }) {
			return m[0]
		}
	}
	return ""
}
