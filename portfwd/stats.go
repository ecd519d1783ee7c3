package portfwd

import (
	"sort"
	"sync/atomic"
	"syscall"
	"time"
)

// counters are one port's, kept from Allocate to Release.
type counters struct {
	total    atomic.Uint64
	active   atomic.Int64
	pending  atomic.Int64 // accepted, not yet relayed (waking, dialling)
	rejected atomic.Uint64
	failed   atomic.Uint64
	bytes    [2]atomic.Uint64 // dirIn, dirOut
}

// Counters are connection and byte counts. Everything but ConnsActive only
// grows, so they map onto Prometheus counters.
type Counters struct {
	// ConnsTotal counts every connection accepted, including those
	// rejected or failed.
	ConnsTotal uint64 `json:"connsTotal"`
	// ConnsActive is the connections open now.
	ConnsActive int64 `json:"connsActive"`
	// ConnsPending is the part of ConnsActive not relayed yet: waiting
	// for the pod's wake or for the dial to it.
	ConnsPending int64 `json:"connsPending"`
	// ConnsRejected counts connections reset because the port was at
	// its connection cap.
	ConnsRejected uint64 `json:"connsRejected"`
	// ConnsFailed counts connections closed because the pod was not
	// running, its wake failed or the dial to it failed.
	ConnsFailed uint64 `json:"connsFailed"`
	// BytesIn is client to pod, BytesOut pod to client. Open
	// connections are included up to the last sweep (bytes the peer has
	// acknowledged); a closed connection's bytes are exact.
	BytesIn  uint64 `json:"bytesIn"`
	BytesOut uint64 `json:"bytesOut"`
}

// Add adds o's counts to c.
func (c *Counters) Add(o Counters) {
	c.ConnsTotal += o.ConnsTotal
	c.ConnsActive += o.ConnsActive
	c.ConnsPending += o.ConnsPending
	c.ConnsRejected += o.ConnsRejected
	c.ConnsFailed += o.ConnsFailed
	c.BytesIn += o.BytesIn
	c.BytesOut += o.BytesOut
}

func (c *counters) snapshot() Counters {
	return Counters{
		ConnsTotal:    c.total.Load(),
		ConnsActive:   c.active.Load(),
		ConnsPending:  c.pending.Load(),
		ConnsRejected: c.rejected.Load(),
		ConnsFailed:   c.failed.Load(),
		BytesIn:       c.bytes[dirIn].Load(),
		BytesOut:      c.bytes[dirOut].Load(),
	}
}

// PortStats are one allocation's counters.
type PortStats struct {
	Allocation
	Listening bool `json:"listening"`
	// Counters are the port's totals: userspace plus kernel path.
	Counters
	// Kernel is the kernel path's share of Counters (zero without one).
	// Its bytes are IP packet lengths (headers included), its
	// connections are counted when the kernel forwards their first
	// packet, and it has no ConnsActive.
	Kernel Counters `json:"kernel,omitzero"`
}

// PodStats are one pod's counters: the sum of its ports'.
type PodStats struct {
	PodID string `json:"podID"`
	State State  `json:"state"`
	Counters
	// LastActive is when one of the pod's relayed connections last moved
	// a byte either way (TCP_INFO, read now), or now while one is pending
	// (ConnsPending); zero without either. The kernel path's connections
	// show in the counters only.
	LastActive time.Time   `json:"lastActive,omitzero"`
	Ports      []PortStats `json:"ports"`
}

// Stats are every pod's counters, sorted by pod ID.
type Stats struct {
	Pods  []PodStats `json:"pods"`
	Total Counters   `json:"total"`
}

func (f *forwarder) Stats() Stats {
	kc := f.kernelCounters() // an exec: before taking f.mu
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	var s Stats
	for _, p := range f.pods {
		p.mu.Lock()
		ps := PodStats{PodID: p.id, State: p.state, Ports: make([]PortStats, 0, len(p.ports))}
		p.mu.Unlock()
		for _, pe := range p.ports {
			c := pe.stats.snapshot()
			k := kc[p.id][pe.alloc.HostPort]
			c.Add(k)
			ps.Ports = append(ps.Ports, PortStats{Allocation: pe.alloc, Listening: pe.ln != nil, Counters: c, Kernel: k})
			ps.Counters.Add(c)
			if pe.ln != nil {
				ps.LastActive = latest(ps.LastActive, pe.ln.lastData(now))
			}
		}
		if ps.ConnsPending > 0 {
			ps.LastActive = now
		}
		s.Total.Add(ps.Counters)
		s.Pods = append(s.Pods, ps)
	}
	sort.Slice(s.Pods, func(i, j int) bool { return s.Pods[i].PodID < s.Pods[j].PodID })
	return s
}

// podStats is Stats of one pod; zero when it has no ports.
func (f *forwarder) podStats(podID string) PodStats {
	for _, ps := range f.Stats().Pods {
		if ps.PodID == podID {
			return ps
		}
	}
	return PodStats{PodID: podID}
}

// lastData is when one of l's relayed connections last sent or received
// data on either socket, as of now; zero if none is open.
func (l *listener) lastData(now time.Time) time.Time {
	var last time.Time
	for _, c := range l.snapshot() {
		for _, rc := range [...]syscall.RawConn{c.clientRaw, c.backendRaw} {
			if si, ok := tcpInfo(rc); ok {
				last = latest(last, now.Add(-min(si.sinceSent, si.sinceRecv)))
			}
		}
	}
	return last
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
