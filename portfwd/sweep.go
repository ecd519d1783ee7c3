package portfwd

import (
	"time"
)

// Idle timeouts and live byte counts without touching the data path.
//
// io.Copy between two *net.TCPConn splices in the kernel and only returns
// at EOF or error, so userspace never sees individual reads: there is no
// place to bump a last-activity time or extend a deadline per read without
// wrapping a conn, and wrapping disables splice. Copying in io.CopyN chunks
// keeps splice (net handles *io.LimitedReader) but a chunk only returns
// once full, so a trickle of small messages would look idle.
//
// The kernel already keeps what we need per socket: TCP_INFO has the time
// since data was last sent and received (tcpi_last_data_sent/recv) and the
// bytes the peer acknowledged (tcpi_bytes_acked). One sweeper goroutine per
// forwarder reads it for every open connection, two getsockopt calls each,
// every idleTimeout/4 (at most every 5s). A connection is idle when none of
// its two sockets moved data either way for idleTimeout. The cost is the
// sweep (two system calls per socket), nothing per byte, and the timeout
// fires up to a quarter late.
//
// Live byte counts credit bytes_acked of the socket each direction writes
// to; that never exceeds what io.Copy wrote (less the SYN a dialled socket
// counts), so when the copy ends the exact remainder is added and the
// counters never go down.

const maxSweepInterval = 5 * time.Second

func (f *forwarder) sweepInterval() time.Duration {
	if f.idleTimeout <= 0 {
		return maxSweepInterval
	}
	return min(max(f.idleTimeout/4, 10*time.Millisecond), maxSweepInterval)
}

func (f *forwarder) sweep() {
	defer close(f.sweepDone)
	t := time.NewTicker(f.sweepInterval())
	defer t.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		}
		f.mu.Lock()
		var ls []*listener
		for _, p := range f.pods {
			for _, pe := range p.ports {
				if pe.ln != nil {
					ls = append(ls, pe.ln)
				}
			}
		}
		f.mu.Unlock()
		for _, l := range ls {
			for _, c := range l.snapshot() {
				if c.sweep(&l.port.stats, f.idleTimeout) {
					f.logger.Debug("portfwd: closing idle connection", "pod", l.pod.id,
						"port", l.port.alloc.key(), "client", c.client.RemoteAddr())
					c.abort(false)
				}
			}
		}
	}
}

// sweep credits the bytes acknowledged so far and says whether the
// connection has been idle for longer than idle (0: never).
func (c *proxyConn) sweep(st *counters, idle time.Duration) bool {
	ci, cok := tcpInfo(c.clientRaw)
	bi, bok := tcpInfo(c.backendRaw)
	c.mu.Lock()
	// The FIN, which bytes_acked also counts, is only sent after done is
	// set, so an unfinished direction's bytes_acked is all data.
	if bok && !c.done[dirIn] && bi.acked > 0 {
		if n := bi.acked - 1; n > c.credited[dirIn] { // a dialled socket counts its SYN
			st.bytes[dirIn].Add(n - c.credited[dirIn])
			c.credited[dirIn] = n
		}
	}
	if cok && !c.done[dirOut] && ci.acked > c.credited[dirOut] {
		st.bytes[dirOut].Add(ci.acked - c.credited[dirOut])
		c.credited[dirOut] = ci.acked
	}
	c.mu.Unlock()
	if idle <= 0 || !cok || !bok {
		return false
	}
	return min(ci.sinceSent, ci.sinceRecv, bi.sinceSent, bi.sinceRecv) >= idle
}

// sockInfo is the part of TCP_INFO the sweeper uses.
type sockInfo struct {
	acked                uint64
	sinceSent, sinceRecv time.Duration
}
