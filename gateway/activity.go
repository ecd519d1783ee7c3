package gateway

import (
	"io"
	"sync/atomic"
	"time"
)

// A proxied exchange is metered for as long as it lasts, not only when it
// opens: a WebSocket (code-server, the web terminal) or an event stream
// can stay open for hours on one request, and a pod whose user types into
// one must not look idle (docs/hibernate.md). The meter counts the bytes
// of the request body, the response body and both directions of an
// upgraded connection, and credits them to the backend's Activity at most
// once per interval while they move, and once more when the exchange ends.

// activityEvery is how often, at most, an exchange's bytes are
// credited while it lasts. It must stay well under the shortest idle
// timeout anyone sets, since a credit is what keeps the pod awake.
const activityEvery = time.Second

// meter counts one exchange's bytes. Safe for concurrent use: the two
// directions of an upgraded connection are copied by two goroutines.
type meter struct {
	credit func(n int64) // called with the bytes since the last call
	every  int64         // nanoseconds between credits, at most one per
	now    func() time.Time
	n      atomic.Int64 // bytes not yet credited
	last   atomic.Int64 // unix nanoseconds of the last credit (or the open)
}

func newMeter(credit func(int64), every time.Duration, now func() time.Time) *meter {
	m := &meter{credit: credit, every: int64(every), now: now}
	m.last.Store(now().UnixNano()) // the open itself was counted by Resolve
	return m
}

// add counts n bytes and credits what is pending when an interval has
// passed since the last credit; one goroutine wins a given interval.
func (m *meter) add(n int) {
	if n <= 0 {
		return
	}
	m.n.Add(int64(n))
	now, last := m.now().UnixNano(), m.last.Load()
	if now-last >= m.every && m.last.CompareAndSwap(last, now) {
		m.flush()
	}
}

// flush credits what is pending, if anything.
func (m *meter) flush() {
	if b := m.n.Swap(0); b > 0 {
		m.credit(b)
	}
}

// meteredBody is a request or response body that counts what is read.
type meteredBody struct {
	io.ReadCloser
	m *meter
}

func (b *meteredBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.m.add(n)
	return n, err
}

// meteredConn is the backend side of an upgraded connection
// (httputil.ReverseProxy wants an io.ReadWriteCloser): reads are the pod's
// bytes to the client, writes the client's to the pod.
type meteredConn struct {
	io.ReadWriteCloser
	m *meter
}

func (c *meteredConn) Read(p []byte) (int, error) {
	n, err := c.ReadWriteCloser.Read(p)
	c.m.add(n)
	return n, err
}

func (c *meteredConn) Write(p []byte) (int, error) {
	n, err := c.ReadWriteCloser.Write(p)
	c.m.add(n)
	return n, err
}
