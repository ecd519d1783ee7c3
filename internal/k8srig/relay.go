package k8srig

import (
	"io"
	"net"
	"sync"
)

// relay accepts TCP connections on listen and copies each, both ways, to
// target. It is how a node's namespace reaches the API server, which
// stays bound to 127.0.0.1 (the rule): the node dials its host
// side, 10.231.N.1, the rig relays to 127.0.0.1. TLS passes through
// untouched (the API server's certificate names 10.231.N.1 too). Unlike
// a DNAT to 127.0.0.1 (route_localnet on the veth) it leaves no rule on
// the host to undo: it ends with the rig's process.
type relay struct {
	l      net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

func newRelay(listen, target string) (*relay, error) {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	r := &relay{l: l, target: target, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.serve()
	return r, nil
}

func (r *relay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.l.Accept()
		if err != nil {
			return // closed
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.pipe(c)
		}()
	}
}

// track adds c to the connections Close closes, or reports false once
// the relay is closed.
func (r *relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *relay) untrack(c net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.conns, c)
}

func (r *relay) pipe(c net.Conn) {
	defer c.Close()
	if !r.track(c) {
		return
	}
	defer r.untrack(c)
	u, err := net.Dial("tcp", r.target)
	if err != nil {
		return
	}
	defer u.Close()
	if !r.track(u) {
		return
	}
	defer r.untrack(u)
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(u, c)
		_ = u.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	_, _ = io.Copy(c, u)
	_ = c.(*net.TCPConn).CloseWrite()
	<-done
}

// Close stops accepting, closes every relayed connection and waits for
// the relay's goroutines.
func (r *relay) Close() {
	if r == nil {
		return
	}
	_ = r.l.Close()
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}
