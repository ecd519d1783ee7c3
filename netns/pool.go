package netns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
)

// The warm pool keeps networks made ahead of time for pods that take the
// default network: a subnet from the pool, the default egress policy, the
// host's resolvers, no bandwidth limit. Setup for such a pod re-labels a
// warm entry (a record rename) instead of creating the namespace and
// running CNI ADD and iptables (the bulk of a network's setup, all of it
// on the pod's start path: the sandbox cannot be created before its
// namespace is wired; docs/networking.md has the figures).
//
// An entry keeps the host-side names it was made with (netns, bridge,
// chains): everything that undoes it reads them from the record, never
// from the pod ID. It keeps its subnet reservation's owner too
// (Attachment.SubnetOwner), so the subnet store needs no rename.

// warmPrefix starts the ID of every warm entry. Pod IDs never start with
// it (the pod manager makes "p" + hex).
const warmPrefix = "warm-"

// IsWarm reports whether id names a warm pool entry rather than a pod.
func IsWarm(id string) bool { return strings.HasPrefix(id, warmPrefix) }

// poolable reports whether spec is the default network a warm entry has.
func poolable(spec Spec) bool {
	return !spec.Subnet.IsValid() && spec.Bandwidth.isZero() &&
		spec.Policy.mode() == ModeDefault && len(spec.Policy.Allow) == 0 && len(spec.Policy.Deny) == 0 &&
		len(spec.DNS.Nameservers) == 0 && spec.DNS.Search == nil && spec.DNS.Options == nil
}

// claim hands a warm entry to spec's pod, or returns nil when none is
// ready (or the one taken turned out dead, which it tears down). Callers
// hold the pod's lock.
func (m *manager) claim(ctx context.Context, spec Spec) *Attachment {
	m.warmMu.Lock()
	if len(m.warmReady) == 0 {
		m.warmMu.Unlock()
		return nil
	}
	w := m.warmReady[0]
	m.warmReady = m.warmReady[1:]
	m.warmMu.Unlock()
	defer m.kickWarm()

	log := m.log.With("pod", spec.PodID, "warm", w)
	unlock := m.lock(w) // against a concurrent DrainWarmPool
	defer unlock()
	a, err := m.load(w)
	if err == nil && !nsAlive(a.NetnsPath) {
		err = fmt.Errorf("namespace %s is gone", a.NetnsPath)
	}
	if err == nil {
		// The entry took the host's resolvers when it was made, and its
		// chains allow DNS to exactly those: if the host's changed since,
		// the entry is stale.
		if host, herr := m.hostDNS(); herr != nil || !sameDNS(host, a.DNS) {
			err = fmt.Errorf("the host's resolvers changed since it was made (%v)", herr)
		}
	}
	if err != nil {
		log.Warn("warm network unusable; setting up a new one", "err", err)
		m.discardWarm(ctx, log, w)
		return nil
	}
	a.PodID = spec.PodID
	a.Hostname = spec.Hostname
	if a.Hostname == "" {
		a.Hostname = spec.PodID
	}
	if a.SubnetOwner == "" {
		a.SubnetOwner = w
	}
	// The pod's record first, then the entry's goes: a crash in between
	// leaves two records of one network, which dropStale resolves in the
	// pod's favour.
	if err := m.writeRecord(spec.PodID, a); err != nil {
		log.Warn("claiming warm network", "err", err)
		m.discardWarm(ctx, log, w)
		return nil
	}
	if err := os.Remove(m.recordPath(w)); err != nil {
		log.Warn("claiming warm network: entry record", "err", err)
	}
	log.Debug("network from the warm pool", "netns", a.NetnsName, "ip", a.IP)
	return a
}

// discardWarm tears down a warm entry a claim could not use. A failure is
// logged, not returned: the pod goes on to a network of its own, and the
// entry's record stays, so the next RunWarmPool start (which drains
// leftovers) or DrainWarmPool tries again.
func (m *manager) discardWarm(ctx context.Context, log *slog.Logger, w string) {
	if err := m.teardown(context.WithoutCancel(ctx), w); err != nil {
		log.Warn("tearing down an unusable warm network; left for the next drain", "err", err)
	}
}

// sameDNS reports whether a network made with the host's resolvers host
// has dns (Setup copies host's search and options only when unset, and a
// warm entry never sets them).
func sameDNS(host, dns DNS) bool {
	return slices.Equal(host.Nameservers, dns.Nameservers) && slices.Equal(host.Search, dns.Search) && slices.Equal(host.Options, dns.Options)
}

// kickWarm asks the filler for another entry.
func (m *manager) kickWarm() {
	select {
	case m.warmKick <- struct{}{}:
	default:
	}
}

// warmRefillDelay keeps a refill off the CPU while the pod that just took
// an entry boots its sandbox (on two cores the boot would pay for it).
const warmRefillDelay = 500 * time.Millisecond

func (m *manager) RunWarmPool(ctx context.Context) error {
	if m.warmSize == 0 {
		<-ctx.Done()
		return nil
	}
	// Entries left by an earlier run (a crash) were not checked since: a
	// fresh pool is cheap and certain.
	if err := m.drainWarm(context.WithoutCancel(ctx), true); err != nil {
		m.log.Warn("warm pool: draining leftovers", "err", err)
	}
	defer func() {
		if err := m.DrainWarmPool(context.WithoutCancel(ctx)); err != nil {
			m.log.Warn("warm pool: draining", "err", err)
		}
	}()
	backoff := time.Second
	for {
		m.warmMu.Lock()
		short := len(m.warmReady) < m.warmSize
		m.warmMu.Unlock()
		if !short {
			select {
			case <-ctx.Done():
				return nil
			case <-m.warmKick:
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(warmRefillDelay):
			}
			continue
		}
		id, err := newWarmID()
		if err == nil {
			_, err = m.Setup(ctx, Spec{PodID: id})
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// A broken plugin or a full pool: pods still get networks the
			// slow way; try again later, not in a tight loop.
			m.log.Warn("warm pool: setting up an entry", "err", err, "retryIn", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Minute)
			continue
		}
		backoff = time.Second
		m.warmMu.Lock()
		m.warmReady = append(m.warmReady, id)
		m.warmMu.Unlock()
	}
}

func (m *manager) DrainWarmPool(ctx context.Context) error { return m.drainWarm(ctx, false) }

// drainWarm tears the unclaimed entries down; with orphans it also frees
// warm subnet reservations that have no record (RunWarmPool does this at
// start, when the subnet store is surely the node's own).
func (m *manager) drainWarm(ctx context.Context, orphans bool) error {
	m.warmMu.Lock()
	m.warmReady = nil
	m.warmMu.Unlock()
	ids, err := m.recordIDs()
	if err != nil {
		return err
	}
	claimed := map[string]bool{} // netns names some pod's record holds
	owners := map[string]bool{}  // warm entries whose subnet a pod holds now
	for _, id := range ids {
		if IsWarm(id) {
			continue
		}
		if a, err := m.load(id); err == nil {
			claimed[a.NetnsName] = true
			owners[a.SubnetOwner] = true
		}
	}
	var errs []error
	for _, id := range ids {
		if !IsWarm(id) {
			continue
		}
		if a, err := m.load(id); err == nil && claimed[a.NetnsName] {
			// A claim the process did not finish: the network is the
			// pod's now; only the entry's record is stale.
			if err := os.Remove(m.recordPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		if err := m.Teardown(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	if !orphans {
		return errors.Join(errs...)
	}
	// A crash between reserving an entry's subnet and writing its record
	// leaves a reservation nothing else will free.
	used, err := m.store.List(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, u := range used {
		if !IsWarm(u.Owner) {
			continue
		}
		if _, err := os.Stat(m.recordPath(u.Owner)); err == nil || owners[u.Owner] {
			continue
		}
		if err := m.store.Release(ctx, u.Owner); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// recordIDs lists the IDs of every record, warm entries included.
func (m *manager) recordIDs() ([]string, error) {
	ents, err := os.ReadDir(m.podsDir())
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), ".json"); ok && !strings.HasPrefix(id, ".") {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func newWarmID() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return warmPrefix + hex.EncodeToString(b), nil
}
