package supervisor

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pinacle/pinacle-node/podspec/svcspec"
)

// probe runs one health check attempt and returns nil when it passes.
type probe func(ctx context.Context) error

func (s *Supervisor) newProbe(r *runner) probe {
	h := r.spec.HealthCheck
	addr := net.JoinHostPort(h.Host, strconv.Itoa(h.Port))
	switch h.Type {
	case svcspec.HealthTCP:
		return func(ctx context.Context) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return fmt.Errorf("tcp %s: %w", addr, err)
			}
			c.Close()
			return nil
		}
	case svcspec.HealthHTTP:
		return func(ctx context.Context) error { return httpProbe(ctx, addr, h) }
	default:
		return func(ctx context.Context) error { return s.execProbe(ctx, r) }
	}
}

// httpProbe does a bare HTTP/1.1 GET and checks the status line. It is
// written by hand to keep net/http's client (transport pools, goroutines,
// TLS) out of init's memory: a probe needs one request on a fresh conn.
func httpProbe(ctx context.Context, addr string, h *svcspec.HealthCheck) error {
	url := "http://" + addr + h.Path
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("http GET %s: %w", url, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	req := "GET " + h.Path + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: pinacle-health\r\nConnection: close\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		return fmt.Errorf("http GET %s: %w", url, err)
	}
	line, err := bufio.NewReaderSize(c, 512).ReadString('\n')
	if err != nil {
		return fmt.Errorf("http GET %s: reading status: %w", url, err)
	}
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/") {
		return fmt.Errorf("http GET %s: bad status line %q", url, strings.TrimSpace(line))
	}
	code, err := strconv.Atoi(f[1])
	if err != nil {
		return fmt.Errorf("http GET %s: bad status line %q", url, strings.TrimSpace(line))
	}
	if code < h.StatusMin || code > h.StatusMax {
		return fmt.Errorf("http GET %s: status %d, want %d-%d", url, code, h.StatusMin, h.StatusMax)
	}
	return nil
}

// execProbe runs the check command as the service's user, in its
// environment, through the same reaper as the services; output is kept
// (up to 512 bytes) for the failure reason.
func (s *Supervisor) execProbe(ctx context.Context, r *runner) error {
	h := r.spec.HealthCheck
	rd, wr, err := os.Pipe()
	if err != nil {
		return err
	}
	p := r.procSpec(h.Command, wr)
	pid, done, err := s.reaper.start(func() (int, error) { return fork(p) })
	wr.Close()
	if err != nil {
		rd.Close()
		return fmt.Errorf("exec %s: %w", h.Command[0], err)
	}
	outc := make(chan string, 1)
	go func() {
		b := make([]byte, 512)
		n, _ := readFull(rd, b)
		rd.Close() // a grandchild still writing gets EPIPE, never blocks us
		outc <- strings.TrimSpace(string(b[:n]))
	}()
	var st exitStatus
	select {
	case st = <-done:
	case <-ctx.Done():
		unix.Kill(-pid, unix.SIGKILL)
		<-done
		unix.Kill(-pid, unix.SIGKILL)
		<-outc
		return fmt.Errorf("exec %s: timed out after %s", strings.Join(h.Command, " "), h.Timeout)
	}
	unix.Kill(-pid, unix.SIGKILL) // anything it left behind in its group
	out := <-outc
	if st.code != 0 || st.signal != 0 {
		if out != "" {
			return fmt.Errorf("exec %s: %s: %s", strings.Join(h.Command, " "), st, out)
		}
		return fmt.Errorf("exec %s: %s", strings.Join(h.Command, " "), st)
	}
	return nil
}

func readFull(f *os.File, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := f.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// healthLoop probes r's service until ctx is done and reports each
// verdict change on its status.
func (s *Supervisor) healthLoop(ctx context.Context, r *runner, gen int) {
	probeLoop(ctx, r.spec.HealthCheck, s.newProbe(r), verdicts{
		healthy:   func() { s.setHealth(r, gen, HealthHealthy, "") },
		failing:   func(err error) { s.noteHealthError(r, gen, err) },
		unhealthy: func(reason string) { s.setHealth(r, gen, HealthUnhealthy, reason) },
	})
}

// verdicts is what a probe loop reports: a pass, a failure that does not
// count yet (start period, or fewer than retries in a row), and the
// unhealthy verdict with its reason.
type verdicts struct {
	healthy   func()
	failing   func(err error)
	unhealthy func(reason string)
}

// probeLoop runs check on h's schedule until ctx is done.
// Until the first success (within the start period) it probes on a fast
// schedule so a service that comes up quickly is seen healthy within
// milliseconds, not a full interval later.
func probeLoop(ctx context.Context, h *svcspec.HealthCheck, check probe, v verdicts) {
	started := time.Now()
	inStart := true
	fails := 0
	// Fast probes while starting: 5 ms apart for a network probe (a
	// loopback connect costs microseconds), 20 ms for an exec one (a fork
	// and exec), growing by a quarter each time up to a second.
	fast := 5 * time.Millisecond
	if h.Type == svcspec.HealthExec {
		fast = 20 * time.Millisecond
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, h.Timeout.Duration)
		err := check(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		next := h.Interval.Duration
		if err == nil {
			inStart, fails = false, 0
			v.healthy()
		} else if inStart && time.Since(started) < h.StartPeriod.Duration {
			v.failing(err)
		} else {
			fails++
			if fails >= h.Retries {
				reason := fmt.Sprintf("health check failed %d times in a row: %v", fails, err)
				if inStart {
					reason = fmt.Sprintf("never became healthy (start period %s, %d failures after it): %v", h.StartPeriod, fails, err)
				}
				v.unhealthy(reason)
			} else {
				v.failing(err)
			}
		}
		if inStart && time.Since(started) < h.StartPeriod.Duration {
			next = min(fast, h.Interval.Duration)
			fast = min(fast+fast/4, time.Second)
		}
		t.Reset(next)
	}
}
