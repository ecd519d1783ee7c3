package portfwd_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/portfwd"
)

// The benchmarks compare the forwarder with a direct loopback connection
// to the same backend, in the same run, and print the figures:
//
//	go test ./portfwd -run='^$' -bench=. -benchtime=1x
//
// Lines starting "portfwd-bench:" are the report.

func report(format string, args ...any) { fmt.Printf("portfwd-bench: "+format+"\n", args...) }

// sink reads to EOF with a large buffer, then answers with the count.
func sink(c *net.TCPConn) {
	buf := make([]byte, 1<<20)
	var n uint64
	for {
		m, err := c.Read(buf)
		n += uint64(m)
		if err != nil {
			break
		}
	}
	binary.Write(c, binary.BigEndian, n)
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// transfer sends size bytes to the sink at to; it returns the wall time
// and the CPU time the whole process (client, forwarder, sink) spent.
func transfer(b *testing.B, to netip.AddrPort, size int64) (wall, cpu time.Duration) {
	buf := make([]byte, 1<<20)
	cpu0 := cpuTime()
	start := time.Now()
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(to))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for sent := int64(0); sent < size; sent += int64(len(buf)) {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.CloseWrite()
	var got uint64
	if err := binary.Read(c, binary.BigEndian, &got); err != nil || got != uint64(size) {
		b.Fatalf("sink got %d bytes (%v), want %d", got, err, size)
	}
	return time.Since(start), cpuTime() - cpu0
}

// BenchmarkThroughput moves 1 GiB through the forwarder and directly, twice
// each, interleaved, and keeps the best of each (the machine is shared).
func BenchmarkThroughput(b *testing.B) {
	const size = 1 << 30
	backend := serve(b, sink)
	f := newFwd(b, 27000, 27009, portfwd.WithIdleTimeout(time.Minute))
	fwd := netip.AddrPortFrom(loopback, startOne(b, f, "tput", backend))
	var direct, viaFwd, directCPU, fwdCPU time.Duration
	b.ResetTimer()
	for range b.N {
		for range 2 {
			d, dc := transfer(b, backend, size)
			p, pc := transfer(b, fwd, size)
			if direct == 0 || d < direct {
				direct, directCPU = d, dc
			}
			if viaFwd == 0 || p < viaFwd {
				viaFwd, fwdCPU = p, pc
			}
		}
	}
	b.StopTimer()
	mbs := func(d time.Duration) float64 { return size / d.Seconds() / 1e6 }
	ratio := direct.Seconds() / viaFwd.Seconds()
	b.ReportMetric(mbs(direct), "direct-MB/s")
	b.ReportMetric(mbs(viaFwd), "fwd-MB/s")
	b.ReportMetric(ratio, "fwd/direct")
	// The userspace relay alone, on loopback. Running pods' ports go
	// through the kernel path instead; the figure (host port vs
	// pod IP, real pod) is node-bench's "1 GiB from a pod" line.
	report("throughput 1 GiB, userspace relay on loopback: direct %.0f MB/s (%v), relay %.0f MB/s (%v), ratio %.2f",
		mbs(direct), direct.Round(time.Millisecond), mbs(viaFwd), viaFwd.Round(time.Millisecond), ratio)
	report("throughput CPU per GiB (client+sink, +forwarder): direct %v, through forwarder %v; the forwarder's own share %v per GiB",
		directCPU.Round(time.Millisecond), fwdCPU.Round(time.Millisecond), (fwdCPU - directCPU).Round(time.Millisecond))
	b.ReportMetric((fwdCPU - directCPU).Seconds(), "fwd-CPU-s/GiB")
	st := portStats(f, "tput", fwd.Port())
	report("throughput counters: bytesIn %d (want %d), bytesOut %d (want %d)", st.BytesIn, 2*b.N*size, st.BytesOut, 2*b.N*8)
}

func latencies(b *testing.B, to netip.AddrPort, n int) []time.Duration {
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(to))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req, resp := make([]byte, 64), make([]byte, 64)
	out := make([]time.Duration, 0, n)
	for i := range n + 1000 { // the first 1000 warm up
		start := time.Now()
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, resp); err != nil {
			b.Fatal(err)
		}
		if i >= 1000 {
			out = append(out, time.Since(start))
		}
	}
	slices.Sort(out)
	return out
}

func pct(d []time.Duration, p float64) time.Duration { return d[int(float64(len(d)-1)*p)] }

// BenchmarkLatency times 64-byte request/response round trips on one
// kept-alive connection.
func BenchmarkLatency(b *testing.B) {
	const n = 20000
	backend := serve(b, echo)
	f := newFwd(b, 27010, 27019)
	fwd := netip.AddrPortFrom(loopback, startOne(b, f, "lat", backend))
	var direct, viaFwd []time.Duration
	b.ResetTimer()
	for range b.N {
		direct = append(direct, latencies(b, backend, n)...)
		viaFwd = append(viaFwd, latencies(b, fwd, n)...)
	}
	b.StopTimer()
	slices.Sort(direct)
	slices.Sort(viaFwd)
	added := pct(viaFwd, 0.5) - pct(direct, 0.5)
	b.ReportMetric(float64(pct(direct, 0.5).Microseconds()), "direct-p50-µs")
	b.ReportMetric(float64(pct(viaFwd, 0.5).Microseconds()), "fwd-p50-µs")
	b.ReportMetric(float64(added.Microseconds()), "added-p50-µs")
	report("latency 64 B req/resp x %d: direct p50 %v p99 %v; forwarder p50 %v p99 %v; added p50 %v (target <= 50µs)",
		len(direct), pct(direct, 0.5), pct(direct, 0.99), pct(viaFwd, 0.5), pct(viaFwd, 0.99), added)
}

func raiseNoFile(b *testing.B, want uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		b.Fatal(err)
	}
	if rl.Cur < want {
		rl.Cur = min(max(want, rl.Cur), rl.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			b.Fatal(err)
		}
	}
	if rl.Cur < want {
		b.Skipf("RLIMIT_NOFILE hard limit %d < %d needed", rl.Max, want)
	}
}

type usage struct {
	heapStack uint64 // Go heap in use + goroutine stacks
	rss       uint64
	fds       int
	pipes     int // fds that are pipe ends (splice buffers)
}

func measure() usage {
	// Splice pipes idle in a sync.Pool are closed by a finalizer once the
	// pool is dropped (two GCs); collect until they are gone.
	for range 3 {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	u := usage{heapStack: ms.HeapInuse + ms.StackInuse}
	if fh, err := os.Open("/proc/self/status"); err == nil {
		s := bufio.NewScanner(fh)
		for s.Scan() {
			if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
				var kb uint64
				fmt.Sscan(rest, &kb)
				u.rss = kb << 10
			}
		}
		fh.Close()
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		u.fds = len(ents)
		for _, e := range ents {
			if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "pipe:") {
				u.pipes++
			}
		}
	}
	return u
}

// openConns opens n connections to `to` at once, does one echo round trip
// on each and leaves them open; it returns them and the number of errors.
func openConns(to netip.AddrPort, n int) ([]*net.TCPConn, int) {
	conns := make([]*net.TCPConn, n)
	var errs sync.Map
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(to))
			if err != nil {
				errs.Store(i, err)
				return
			}
			conns[i] = c
			c.SetDeadline(time.Now().Add(30 * time.Second))
			msg := []byte(fmt.Sprintf("conn %5d", i))
			got := make([]byte, len(msg))
			if _, err := c.Write(msg); err != nil {
				errs.Store(i, err)
				return
			}
			if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
				errs.Store(i, fmt.Errorf("echo %q: %v", got, err))
			}
			c.SetDeadline(time.Time{})
		})
	}
	wg.Wait()
	nerr := 0
	errs.Range(func(k, v any) bool {
		if nerr < 3 {
			report("conn %v: %v", k, v)
		}
		nerr++
		return true
	})
	return conns, nerr
}

func closeAll(conns []*net.TCPConn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// BenchmarkConcurrentConns holds 1000 connections open through one port
// and reports errors and what each idle connection costs the forwarder:
// the same 1000 made directly to the backend are the baseline.
func BenchmarkConcurrentConns(b *testing.B) {
	const n = 1000
	raiseNoFile(b, 16*n)
	backend := serve(b, echo)
	f := newFwd(b, 27020, 27029, portfwd.WithMaxConnsPerPort(2*n))
	fwdPort := startOne(b, f, "many", backend)
	fwd := netip.AddrPortFrom(loopback, fwdPort)
	settle := func() { time.Sleep(200 * time.Millisecond) } // let goroutines park before measuring
	b.ResetTimer()
	for range b.N {
		base := measure()
		conns, derr := openConns(backend, n)
		settle()
		withDirect := measure()
		closeAll(conns)
		settle()

		base2 := measure()
		conns, ferr := openConns(fwd, n)
		poll(b, 30*time.Second, "all connections active", func() bool {
			return portStats(f, "many", fwdPort).ConnsActive == int64(n-ferr)
		})
		settle()
		withFwd := measure()
		st := portStats(f, "many", fwdPort)
		closeAll(conns)

		perConn := func(after, before uint64) float64 { return (float64(after) - float64(before)) / n }
		heapDirect, heapFwd := perConn(withDirect.heapStack, base.heapStack), perConn(withFwd.heapStack, base2.heapStack)
		rssDirect, rssFwd := perConn(withDirect.rss, base.rss), perConn(withFwd.rss, base2.rss)
		fdsFwd := float64((withFwd.fds-base2.fds)-(withDirect.fds-base.fds)) / n
		b.ReportMetric(float64(ferr+derr), "errors")
		b.ReportMetric((heapFwd-heapDirect)/1024, "fwd-heap+stack-KiB/conn")
		b.ReportMetric((rssFwd-rssDirect)/1024, "fwd-RSS-KiB/conn")
		report("%d concurrent connections through one port: %d errors (direct: %d); active %d, rejected %d",
			n, ferr, derr, st.ConnsActive, st.ConnsRejected)
		report("idle connection cost to the forwarder: Go heap+stacks %.1f KiB, RSS %.1f KiB, %.1f fds of which %.1f pipe ends "+
			"(through-forwarder minus direct, per connection; kernel socket and pipe memory not included)",
			(heapFwd-heapDirect)/1024, (rssFwd-rssDirect)/1024, fdsFwd, float64((withFwd.pipes-base2.pipes)-(withDirect.pipes-base.pipes))/n)
	}
}
