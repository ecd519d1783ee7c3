package netns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

func TestDomainMatcher(t *testing.T) {
	m, err := newDomainMatcher([]string{"github.com", "*.npmjs.org", "Example.NET."})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"github.com": true, "GitHub.com.": true, "api.github.com": false, "xgithub.com": false,
		"registry.npmjs.org.": true, "a.b.npmjs.org": true, "npmjs.org": false, "evilnpmjs.org": false,
		"example.net": true, "": false,
	} {
		if got := m.allows(name); got != want {
			t.Errorf("allows(%q) = %v, want %v", name, got, want)
		}
	}
	for _, bad := range []string{"", "*.", "*", "a b.com", "**.x.com", "x.*.com"} {
		if _, err := newDomainMatcher([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// dnsAnswer builds a response to a query for name with the given records.
func dnsAnswer(t *testing.T, id uint16, name string, rrs ...dnsmessage.Resource) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, Response: true, RecursionAvailable: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	b.StartAnswers()
	for _, rr := range rrs {
		var err error
		switch body := rr.Body.(type) {
		case *dnsmessage.AResource:
			err = b.AResource(rr.Header, *body)
		case *dnsmessage.CNAMEResource:
			err = b.CNAMEResource(rr.Header, *body)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	out, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func aRR(name string, ttl uint32, ip string) dnsmessage.Resource {
	return dnsmessage.Resource{
		Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(name), Class: dnsmessage.ClassINET, TTL: ttl},
		Body:   &dnsmessage.AResource{A: netip.MustParseAddr(ip).As4()},
	}
}

func cnameRR(name string, ttl uint32, target string) dnsmessage.Resource {
	return dnsmessage.Resource{
		Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(name), Class: dnsmessage.ClassINET, TTL: ttl},
		Body:   &dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(target)},
	}
}

// Only records on the queried name's CNAME chain count, in any order.
func TestAnsweredAddrs(t *testing.T) {
	resp := dnsAnswer(t, 1, "www.example.com.",
		aRR("cdn.example.net.", 300, "198.51.100.7"),
		cnameRR("www.example.com.", 3600, "edge.example.org."),
		cnameRR("edge.example.org.", 120, "cdn.example.net."),
		aRR("other.example.", 5, "203.0.113.9"),
	)
	addrs, ttl, err := answeredAddrs(resp, "WWW.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(addrs, []netip.Addr{netip.MustParseAddr("198.51.100.7")}) || ttl != 120*time.Second {
		t.Fatalf("addrs %v ttl %s", addrs, ttl)
	}
}

type fakeApply struct {
	mu    sync.Mutex
	calls [][]string
	fail  error
}

func (f *fakeApply) apply(_ context.Context, lines []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.calls = append(f.calls, lines)
	return nil
}

func TestAddrSetAllowExpire(t *testing.T) {
	fa := &fakeApply{}
	s := newAddrSet("C-D", fa.apply)
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	ctx := context.Background()
	a, b := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")
	if err := s.allow(ctx, []netip.Addr{a, a}, time.Second); err != nil { // floored to DomainTTLFloor
		t.Fatal(err)
	}
	if err := s.allow(ctx, []netip.Addr{a}, 10*time.Minute); err != nil { // already open: no call
		t.Fatal(err)
	}
	if err := s.allow(ctx, []netip.Addr{b}, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"-A C-D -d 198.51.100.1/32 -j ACCEPT"}, {"-A C-D -d 198.51.100.2/32 -j ACCEPT"}}
	if !slices.EqualFunc(fa.calls, want, slices.Equal) {
		t.Fatalf("calls %q", fa.calls)
	}
	now = now.Add(3 * time.Minute) // b is due, a (extended to 10 min) is not
	next, err := s.expire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := fa.calls[len(fa.calls)-1]; !slices.Equal(got, []string{"-F C-D", "-A C-D -d 198.51.100.1/32 -j ACCEPT"}) {
		t.Fatalf("expire wrote %q", got)
	}
	if !next.Equal(time.Unix(1000, 0).Add(10 * time.Minute)) {
		t.Fatalf("next %s", next)
	}
	// A failed apply leaves the address closed, so the next answer retries.
	fa.fail = errors.New("iptables down")
	if err := s.allow(ctx, []netip.Addr{b}, time.Minute); err == nil {
		t.Fatal("allow succeeded with a failing apply")
	}
	if got := s.open(); !slices.Equal(got, []netip.Addr{a}) {
		t.Fatalf("open %v", got)
	}
}

func TestChainAddrs(t *testing.T) {
	dump := "-A X-D -d 198.51.100.1/32 -j ACCEPT\n-A X-E -d 10.0.0.1/32 -j ACCEPT\n-A X-D -d 198.51.100.2/32 -j ACCEPT\n"
	if got := chainAddrs(dump, "X-D"); len(got) != 2 || got[1] != netip.MustParseAddr("198.51.100.2") {
		t.Fatalf("%v", got)
	}
}

// upstreamDNS answers A queries for the names in answers on a loopback
// udp port, NXDOMAIN for others.
func upstreamDNS(t *testing.T, answers map[string]string) netip.AddrPort {
	return upstreamDNSOn(t, "127.0.0.1:0", answers)
}

func upstreamDNSOn(t *testing.T, listen string, answers map[string]string) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", listen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	respond := func(q []byte) []byte {
		var p dnsmessage.Parser
		h, err := p.Start(q)
		if err != nil {
			return nil
		}
		qq, err := p.Question()
		if err != nil {
			return nil
		}
		name := strings.ToLower(qq.Name.String())
		if ip, ok := answers[name]; ok {
			return dnsAnswer(t, h.ID, name, aRR(name, 30, ip))
		}
		return reply(h, []dnsmessage.Question{qq}, dnsmessage.RCodeNameError)
	}
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(respond(buf[:n]), from)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

func query(t *testing.T, server netip.AddrPort, name string, tcp bool) (dnsmessage.RCode, []netip.Addr) {
	t.Helper()
	rc, addrs, err := queryErr(server, name, tcp)
	if err != nil {
		t.Fatalf("query %s at %s: %v", name, server, err)
	}
	return rc, addrs
}

// queryErr asks server for name's A records.
func queryErr(server netip.AddrPort, name string, tcp bool) (dnsmessage.RCode, []netip.Addr, error) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 77, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, _ := b.Finish()
	network := "udp4"
	if tcp {
		network = "tcp4"
	}
	c, err := net.DialTimeout(network, server.String(), 2*time.Second)
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	var resp []byte
	if tcp {
		if err := writeTCPMsg(c, q); err != nil {
			return 0, nil, err
		}
		resp, err = readTCPMsg(c)
	} else {
		c.Write(q)
		buf := make([]byte, 1500)
		var n int
		n, err = c.Read(buf)
		resp = buf[:n]
	}
	if err != nil {
		return 0, nil, err
	}
	var p dnsmessage.Parser
	h, err := p.Start(resp)
	if err != nil || h.ID != 77 {
		return 0, nil, fmt.Errorf("bad answer %v id %d", err, h.ID)
	}
	addrs, _, err := answeredAddrs(resp, name)
	return h.RCode, addrs, err
}

// The filter answers only listed names, forwards them, and opens their
// addresses before answering; over udp and tcp.
func TestDNSFilter(t *testing.T) {
	up := upstreamDNS(t, map[string]string{"api.example.com.": "198.51.100.10", "denied.example.org.": "198.51.100.20"})
	upTCP := startTCPUpstream(t, up)
	fa := &fakeApply{}
	set := newAddrSet("T-D", fa.apply)
	lo := netip.MustParseAddr("127.0.0.1")
	for _, tcp := range []bool{false, true} {
		ups := []netip.AddrPort{up}
		if tcp {
			ups = []netip.AddrPort{upTCP}
		}
		f, err := startDNSFilter(netip.AddrPortFrom(lo, 0), lo, ups, []string{"*.example.com"}, set, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		rc, addrs := query(t, f.addr(), "api.example.com.", tcp)
		if rc != dnsmessage.RCodeSuccess || len(addrs) != 1 || addrs[0] != netip.MustParseAddr("198.51.100.10") {
			t.Errorf("tcp=%v allowed name: rcode %v addrs %v", tcp, rc, addrs)
		}
		if rc, addrs := query(t, f.addr(), "denied.example.org.", tcp); rc != dnsmessage.RCodeRefused || len(addrs) != 0 {
			t.Errorf("tcp=%v denied name: rcode %v addrs %v", tcp, rc, addrs)
		}
		f.Close()
	}
	if got := set.open(); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("198.51.100.10")}) {
		t.Errorf("open %v", got)
	}
	if len(fa.calls) != 1 {
		t.Errorf("apply calls %q: want one (the second answer only extends)", fa.calls)
	}
}

// A query from another address than the pod's gets no answer at all.
func TestDNSFilterIgnoresOthers(t *testing.T) {
	up := upstreamDNS(t, map[string]string{"a.example.com.": "198.51.100.10"})
	f, err := startDNSFilter(netip.MustParseAddrPort("127.0.0.1:0"), netip.MustParseAddr("127.0.0.2"), []netip.AddrPort{up},
		[]string{"a.example.com"}, newAddrSet("T-D", (&fakeApply{}).apply), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := net.Dial("udp4", f.addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("a.example.com."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, _ := b.Finish()
	c.Write(q)
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 512)); err == nil {
		t.Fatalf("answered a stranger (%d bytes)", n)
	}
	tc, err := net.Dial("tcp4", f.addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	writeTCPMsg(tc, q)
	tc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := readTCPMsg(tc); err == nil {
		t.Fatal("answered a stranger over tcp")
	}
}

// startTCPUpstream serves DNS over tcp by relaying to the udp upstream.
func startTCPUpstream(t *testing.T, udp netip.AddrPort) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				q, err := readTCPMsg(c)
				if err != nil {
					return
				}
				resp, err := exchange(context.Background(), udp, q, false)
				if err == nil {
					writeTCPMsg(c, resp)
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}
