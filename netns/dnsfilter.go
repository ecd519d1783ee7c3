package netns

// The per-pod DNS filter behind Policy.Domains. It listens on the pod's
// gateway (udp and tcp 53, the only resolver in the pod's resolv.conf),
// answers REFUSED for names not on the pod's list, forwards the others to
// the upstream resolvers, and opens the A records of each answer in the
// pod's domain chain before the pod sees it. Queries from any address but
// the pod's own are dropped: with the pod chains' anti-spoofing rule, no
// other pod can use it.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

const (
	dnsUpstreamTimeout = 2 * time.Second
	dnsTCPIdle         = 10 * time.Second
	dnsMaxInFlight     = 64 // UDP queries answered at once per pod
)

type dnsFilter struct {
	podIP     netip.Addr
	upstreams []netip.AddrPort
	match     domainMatcher
	set       *addrSet
	log       *slog.Logger

	udp    *net.UDPConn
	tcp    *net.TCPListener
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startDNSFilter listens on listen (udp and tcp) and serves podIP's
// queries until Close.
func startDNSFilter(listen netip.AddrPort, podIP netip.Addr, upstreams []netip.AddrPort, domains []string, set *addrSet, log *slog.Logger) (*dnsFilter, error) {
	match, err := newDomainMatcher(domains)
	if err != nil {
		return nil, err
	}
	udp, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(listen))
	if err != nil {
		return nil, fmt.Errorf("dns filter: %w", err)
	}
	listen = netip.AddrPortFrom(listen.Addr(), uint16(udp.LocalAddr().(*net.UDPAddr).Port))
	tcp, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(listen))
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("dns filter: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &dnsFilter{podIP: podIP, upstreams: upstreams, match: match, set: set, log: log, udp: udp, tcp: tcp, cancel: cancel}
	f.wg.Add(3)
	go f.serveUDP(ctx)
	go f.serveTCP(ctx)
	go f.sweep(ctx)
	return f, nil
}

// addr is where the filter listens (the same port for udp and tcp).
func (f *dnsFilter) addr() netip.AddrPort { return f.udp.LocalAddr().(*net.UDPAddr).AddrPort() }

// Close stops serving and waits for every query in flight.
func (f *dnsFilter) Close() {
	f.cancel()
	f.udp.Close()
	f.tcp.Close()
	f.wg.Wait()
}

func (f *dnsFilter) serveUDP(ctx context.Context) {
	defer f.wg.Done()
	slots := make(chan struct{}, dnsMaxInFlight)
	buf := make([]byte, 65535)
	for {
		n, src, err := f.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				f.log.Warn("dns filter: read", "err", err)
				continue
			}
			return
		}
		if src.Addr().Unmap() != f.podIP {
			continue // not the pod: never answer
		}
		q := append([]byte(nil), buf[:n]...)
		slots <- struct{}{}
		f.wg.Add(1)
		go func() {
			defer func() { <-slots; f.wg.Done() }()
			if resp := f.answer(ctx, q, false); resp != nil {
				f.udp.WriteToUDPAddrPort(resp, src)
			}
		}()
	}
}

func (f *dnsFilter) serveTCP(ctx context.Context) {
	defer f.wg.Done()
	for {
		c, err := f.tcp.AcceptTCP()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				f.log.Warn("dns filter: accept", "err", err)
				continue
			}
			return
		}
		if c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap() != f.podIP {
			c.Close()
			continue
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			for {
				c.SetDeadline(time.Now().Add(dnsTCPIdle))
				q, err := readTCPMsg(c)
				if err != nil {
					return
				}
				resp := f.answer(ctx, q, true)
				if resp == nil || writeTCPMsg(c, resp) != nil {
					return
				}
			}
		}()
	}
}

// sweep closes addresses as their time runs out.
func (f *dnsFilter) sweep(ctx context.Context) {
	defer f.wg.Done()
	t := time.NewTimer(DomainTTLFloor)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next, err := f.set.expire(ctx)
		wait := DomainTTLFloor
		if err != nil {
			f.log.Warn("dns filter: close expired addresses", "err", err)
		} else if !next.IsZero() {
			wait = max(time.Until(next), time.Second)
		}
		t.Reset(min(wait, DomainTTLFloor))
	}
}

// answer is the reply to one query: REFUSED for a name not on the list,
// SERVFAIL when no upstream answers or the addresses cannot be opened,
// else the upstream's answer, after its addresses are open. Nil: the
// query was not DNS; drop it.
func (f *dnsFilter) answer(ctx context.Context, query []byte, tcp bool) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil
	}
	qs, err := p.AllQuestions()
	if err != nil {
		return nil
	}
	if len(qs) != 1 || h.OpCode != 0 {
		return reply(h, qs, dnsmessage.RCodeNotImplemented)
	}
	name := qs[0].Name.String()
	if !f.match.allows(name) {
		return reply(h, qs, dnsmessage.RCodeRefused)
	}
	resp, err := f.forward(ctx, query, h.ID, tcp)
	if err != nil {
		f.log.Debug("dns filter: upstream", "name", name, "err", err)
		return reply(h, qs, dnsmessage.RCodeServerFailure)
	}
	addrs, ttl, err := answeredAddrs(resp, name)
	if err != nil {
		return reply(h, qs, dnsmessage.RCodeServerFailure)
	}
	if len(addrs) > 0 {
		if err := f.set.allow(ctx, addrs, ttl); err != nil {
			f.log.Warn("dns filter: open addresses", "name", name, "err", err)
			return reply(h, qs, dnsmessage.RCodeServerFailure)
		}
	}
	return resp
}

// forward asks each upstream in turn and returns the first answer that
// carries the query's ID.
func (f *dnsFilter) forward(ctx context.Context, query []byte, id uint16, tcp bool) ([]byte, error) {
	var errs []error
	for _, up := range f.upstreams {
		resp, err := exchange(ctx, up, query, tcp)
		if err == nil && len(resp) >= 2 && binary.BigEndian.Uint16(resp) != id {
			err = errors.New("answer for another query")
		}
		if err == nil {
			return resp, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", up, err))
	}
	if len(errs) == 0 {
		return nil, errors.New("no upstream resolvers")
	}
	return nil, errors.Join(errs...)
}

func exchange(ctx context.Context, up netip.AddrPort, query []byte, tcp bool) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, dnsUpstreamTimeout)
	defer cancel()
	network := "udp4"
	if tcp {
		network = "tcp4"
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, up.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() }) // Close of the filter: do not wait out the timeout
	defer stop()
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	if tcp {
		if err := writeTCPMsg(c, query); err != nil {
			return nil, err
		}
		return readTCPMsg(c)
	}
	if _, err := c.Write(query); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

func readTCPMsg(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(l[:]))
	_, err := io.ReadFull(r, b)
	return b, err
}

func writeTCPMsg(w io.Writer, m []byte) error {
	if len(m) > 65535 {
		return errors.New("dns message too long")
	}
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(m)), uint16(len(m)))
	_, err := w.Write(append(b, m...))
	return err
}

// reply is an answerless reply to h's query with rcode.
func reply(h dnsmessage.Header, qs []dnsmessage.Question, rcode dnsmessage.RCode) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: h.ID, Response: true, OpCode: h.OpCode, RecursionDesired: h.RecursionDesired,
		RecursionAvailable: true, RCode: rcode,
	})
	b.EnableCompression()
	if b.StartQuestions() != nil {
		return nil
	}
	for _, q := range qs {
		if b.Question(q) != nil {
			return nil
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

// answeredAddrs returns the A records of resp that answer name, directly
// or through its CNAME chain (records for other names are ignored), and
// the smallest TTL on that path.
func answeredAddrs(resp []byte, name string) ([]netip.Addr, time.Duration, error) {
	var p dnsmessage.Parser
	if _, err := p.Start(resp); err != nil {
		return nil, 0, err
	}
	if err := p.SkipAllQuestions(); err != nil {
		return nil, 0, err
	}
	rrs, err := p.AllAnswers()
	if err != nil {
		return nil, 0, err
	}
	chain := map[string]bool{canonicalName(name): true}
	ttl := domainTTLCap
	for grew := true; grew; { // CNAMEs may come in any order
		grew = false
		for _, rr := range rrs {
			c, ok := rr.Body.(*dnsmessage.CNAMEResource)
			if ok && chain[canonicalName(rr.Header.Name.String())] && !chain[canonicalName(c.CNAME.String())] {
				chain[canonicalName(c.CNAME.String())] = true
				ttl = min(ttl, time.Duration(rr.Header.TTL)*time.Second)
				grew = true
			}
		}
	}
	var addrs []netip.Addr
	for _, rr := range rrs {
		a, ok := rr.Body.(*dnsmessage.AResource)
		if ok && chain[canonicalName(rr.Header.Name.String())] {
			addrs = append(addrs, netip.AddrFrom4(a.A))
			ttl = min(ttl, time.Duration(rr.Header.TTL)*time.Second)
		}
	}
	return addrs, ttl, nil
}
