package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/net/dns/dnsmessage"
)

// dnsWorld is a stand-in internet with names: a network namespace of
// ours, routed from the host, holding HTTP on three "public" addresses
// (198.18.78.1-3, benchmarking range) and a DNS server (198.18.78.53,
// served by this test binary from a socket made inside the namespace)
// that knows allowed.test, a.wild.test and denied.test.
type dnsWorld struct {
	ns                         string
	allowed, wild, denied, dns string
}

func newDNSWorld(t *testing.T) *dnsWorld {
	t.Helper()
	w := &dnsWorld{ns: fmt.Sprintf("pnt-dns-%d", os.Getpid()%100000),
		allowed: "198.18.78.1", wild: "198.18.78.2", denied: "198.18.78.3", dns: "198.18.78.53"}
	hostIf, nsIf := fmt.Sprintf("pntd%d", os.Getpid()%10000), fmt.Sprintf("pntD%d", os.Getpid()%10000)
	run := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		exec.Command("ip", "route", "del", "198.18.78.0/24").Run()
		exec.Command("ip", "link", "del", hostIf).Run()
		if out, err := exec.Command("ip", "netns", "pids", w.ns).Output(); err == nil {
			for _, pid := range strings.Fields(string(out)) {
				exec.Command("kill", "-9", pid).Run()
			}
		}
		exec.Command("ip", "netns", "del", w.ns).Run()
	})
	run("ip", "netns", "add", w.ns)
	run("ip", "link", "add", hostIf, "type", "veth", "peer", "name", nsIf)
	run("ip", "link", "set", nsIf, "netns", w.ns)
	run("ip", "addr", "add", "198.19.78.1/30", "dev", hostIf)
	run("ip", "link", "set", hostIf, "up")
	run("ip", "-n", w.ns, "addr", "add", "198.19.78.2/30", "dev", nsIf)
	for _, a := range []string{w.allowed, w.wild, w.denied, w.dns} {
		run("ip", "-n", w.ns, "addr", "add", a+"/32", "dev", "lo")
	}
	run("ip", "-n", w.ns, "link", "set", nsIf, "up")
	run("ip", "-n", w.ns, "link", "set", "lo", "up")
	run("ip", "-n", w.ns, "route", "add", "default", "via", "198.19.78.1")
	run("ip", "route", "add", "198.18.78.0/24", "via", "198.19.78.2")
	www := t.TempDir()
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("named internet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("ip", "netns", "exec", w.ns, "busybox", "httpd", "-p", "80", "-h", www)
	w.serveDNS(t, map[string]string{"allowed.test.": w.allowed, "a.wild.test.": w.wild, "denied.test.": w.denied})
	poll(t, 10*time.Second, "named internet server", func() bool {
		_, err := httpGet("http://"+w.allowed+"/index.html", 2*time.Second)
		return err == nil
	})
	return w
}

// serveDNS answers A queries for the names in answers (TTL 300), NXDOMAIN
// for others, on udp w.dns:53 inside the namespace.
func (w *dnsWorld) serveDNS(t *testing.T, answers map[string]string) {
	t.Helper()
	var pc net.PacketConn
	err := ns.WithNetNSPath("/run/netns/"+w.ns, func(ns.NetNS) error {
		var err error
		pc, err = net.ListenPacket("udp4", w.dns+":53")
		return err
	})
	if err != nil {
		t.Fatalf("dns server in %s: %v", w.ns, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := dnsReply(buf[:n], answers); resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
}

func dnsReply(q []byte, answers map[string]string) []byte {
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
	ip, known := answers[name]
	rh := dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.StartQuestions()
	b.Question(qq)
	b.StartAnswers()
	if known && qq.Type == dnsmessage.TypeA {
		b.AResource(dnsmessage.ResourceHeader{Name: qq.Name, Class: dnsmessage.ClassINET, TTL: 300},
			dnsmessage.AResource{A: netip.MustParseAddr(ip).As4()})
	}
	out, _ := b.Finish()
	return out
}

// reach says whether pod fetched url. A clean answer is true; a refused
// or unreachable connection, or a name the resolver would not give, is
// false; anything else (the probe did not run) fails the test.
func reach(t *testing.T, d *daemon, pod, url string) bool {
	t.Helper()
	r := d.cli("pod", "exec", pod, "--", "sh", "-c", "timeout 5 wget -q -O - "+url)
	t.Logf("%s: wget %s: exit %d %s %s", pod, url, r.code, strings.TrimSpace(r.stdout), strings.TrimSpace(r.stderr))
	switch {
	case r.code == 0 && strings.Contains(r.stdout, "named internet"):
		return true
	case r.code == 143, strings.Contains(r.stderr, "can't connect"), strings.Contains(r.stderr, "unreachable"),
		strings.Contains(r.stderr, "bad address"):
		return false
	}
	t.Fatalf("probe from %s to %s did not run: exit %d: %s %s", pod, url, r.code, r.stdout, r.stderr)
	return false
}

// podChains lists the iptables chains of the node that name a pod's
// domain set (PINACLE-<hash>-D).
func domainChains(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("iptables-save", "-t", "filter").Output()
	if err != nil {
		t.Fatalf("iptables-save: %v", err)
	}
	return regexp.MustCompile(`(?m)^:(PINACLE-[0-9a-f]+-D) `).FindAllString(string(out), -1)
}

// Egress domains: an allowed name's address becomes reachable once the
// pod has resolved it (and not before); a denied name does not resolve
// and its address, like any raw IP, stays blocked; the pod's domain chain
// is gone after delete; a daemon restart brings the filter back. Egress none: the pod serves its port and sends
// nothing, not even DNS.
func TestNodeEgressDomainsAndNone(t *testing.T) {
	d := startDaemon(t)
	w := newDNSWorld(t)
	before := len(domainChains(t))
	egress := fmt.Sprintf("  egress: {mode: allowlist, domains: [allowed.test, \"*.wild.test\"]}\n  dns: {nameservers: [%s]}\n", w.dns)
	if _, r := d.create(webSpec("dom", egress)); r.code != 0 {
		t.Fatalf("create dom: exit %d: %s", r.code, r.stderr)
	}
	if n := len(domainChains(t)); n != before+1 {
		t.Fatalf("domain chains %d, want %d", n, before+1)
	}
	if reach(t, d, "dom", "http://"+w.allowed+"/index.html") {
		t.Error("reached an allowed name's address before resolving it")
	}
	if reach(t, d, "dom", "http://denied.test/index.html") {
		t.Error("reached a denied name")
	}
	if reach(t, d, "dom", "http://"+w.denied+"/index.html") {
		t.Error("reached a raw IP that no allowed name resolves to")
	}
	if !reach(t, d, "dom", "http://allowed.test/index.html") {
		t.Error("allowed name unreachable after resolving it")
	}
	// The filter lives in the daemon: after a SIGKILL and restart the
	// adopted pod resolves again (a name it never asked for before).
	d.kill()
	d.start()
	if !reach(t, d, "dom", "http://a.wild.test/index.html") {
		t.Error("wildcard name unreachable after resolving it (after a daemon restart)")
	}
	// The pod asks the node's filter, never the upstream directly.
	if r := d.cli("pod", "exec", "dom", "--", "cat", "/etc/resolv.conf"); r.code != 0 || strings.Contains(r.stdout, w.dns) {
		t.Errorf("resolv.conf of dom names the upstream: %s %s", r.stdout, r.stderr)
	}
	if r := d.cli("pod", "delete", "dom"); r.code != 0 {
		t.Fatalf("delete dom: %s", r.stderr)
	}
	if n := len(domainChains(t)); n != before {
		t.Errorf("domain chains %d after delete, want %d", n, before)
	}

	// Egress none: rules are refused, and the pod sends nothing.
	_, r := d.create(webSpec("mute-bad", "  egress: {mode: none, allow: [{cidr: 198.18.78.1/32}]}\n"))
	if r.code != 5 || !strings.Contains(r.stderr, "network.egress.allow") {
		t.Errorf("mode none with an allow rule: exit %d: %s", r.code, r.stderr)
	}
	p, r := d.create(webSpec("mute", "  egress: {mode: none}\n"))
	if r.code != 0 {
		t.Fatalf("create mute: exit %d: %s", r.code, r.stderr)
	}
	if body, err := httpGet(p.Ports[0].URL+"/index.html", 5*time.Second); err != nil || strings.TrimSpace(body) != "mute" {
		t.Errorf("host port of a pod with egress none: %q %v", body, err)
	}
	if reach(t, d, "mute", "http://"+w.allowed+"/index.html") {
		t.Error("pod with egress none reached the internet")
	}
	r = d.cli("pod", "exec", "mute", "--", "sh", "-c", "grep nameserver /etc/resolv.conf; timeout 5 nslookup allowed.test "+w.dns)
	if r.code == 0 || strings.Contains(r.stdout, w.allowed) {
		t.Errorf("pod with egress none resolved a name: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if r := d.cli("pod", "delete", "mute"); r.code != 0 {
		t.Fatalf("delete mute: %s", r.stderr)
	}
}
