package dnat

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/pinacle/pinacle-node/portfwd"
)

// The rule layout (see docs/portfwd.md, "Kernel fast path"):
//
//	nat    PREROUTING  ! -i <pod ifaces> -m addrtype --dst-type LOCAL -j P
//	nat    OUTPUT      -m addrtype --dst-type LOCAL -j P
//	nat    P           -m comment --comment pinacle:<owner>:<pod> -j P-<hash>
//	nat    P-<hash>    [-d <listen>] -p tcp --dport H -j DNAT --to-destination IP:PP
//	nat    POSTROUTING -j P-POST
//	nat    P-POST      -s 127.0.0.0/8 -o <bridge> -m conntrack --ctstate DNAT -j MASQUERADE --random-fully (per pod)
//	filter FORWARD     -j P (first), OUTPUT -j P, INPUT -j P-GUARD, -j P (first)
//	filter P           -m comment --comment pinacle:<owner>:<pod> -j P-<hash>
//	filter P-<hash>    per port: connlimit reject, accept in (counts bytes in), accept replies (bytes out)
//	filter P-GUARD     -i <pod ifaces> -d 127/8 ! -s 127/8, not a reply or DNAT: DROP
//
// Every per-port rule carries a comment "<hostPort>:<kind>" so counters
// can be read back from iptables-save -c.

const (
	kindConns    = "conns"    // nat DNAT: one packet per connection
	kindRejected = "rejected" // filter connlimit REJECT
	kindIn       = "in"       // filter ACCEPT, client to pod
	kindOut      = "out"      // filter ACCEPT, pod to client
)

// names are the chain names and comment tag of one kernel path.
type names struct {
	node, post, guard string // node chains
	ownerTag          string // "pinacle:<owner hash>:"
	prefix            string
}

func newNames(prefix, owner string) names {
	sum := sha256.Sum256([]byte(owner))
	return names{
		node: prefix, post: prefix + "-POST", guard: prefix + "-GUARD",
		ownerTag: "pinacle:" + hex.EncodeToString(sum[:4]) + ":", prefix: prefix,
	}
}

// tag is the comment on a pod's jumps and masquerade rule: how Prune and
// Counters find this owner's pods.
func (n names) tag(pod string) string { return n.ownerTag + pod }

func (n names) podChain(pod string) string {
	sum := sha256.Sum256([]byte(n.ownerTag + pod))
	return n.prefix + "-" + hex.EncodeToString(sum[:])[:10]
}

// rule is one "-A" line of iptables-save -c.
type rule struct {
	chain   string
	spec    string // "-A CHAIN ...", without the counters
	pkts    uint64
	bytes   uint64
	comment string
}

// table is one table of a dump.
type table struct {
	chains map[string]bool
	rules  []rule
}

func (t *table) in(chain string) []rule {
	var out []rule
	for _, r := range t.rules {
		if r.chain == chain {
			out = append(out, r)
		}
	}
	return out
}

var (
	countersRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\[(\d+):(\d+)\] `) })
	commentRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`--comment "?([^" ]+)"?`) })
)

// parseDump reads iptables-save (-c or not) into tables.
func parseDump(dump string) map[string]*table {
	out := map[string]*table{}
	var cur *table
	for l := range strings.Lines(dump) {
		l = strings.TrimRight(l, "\n")
		switch {
		case strings.HasPrefix(l, "*"):
			cur = &table{chains: map[string]bool{}}
			out[strings.TrimSpace(l[1:])] = cur
		case cur == nil:
		case strings.HasPrefix(l, ":"):
			cur.chains[strings.Fields(l[1:])[0]] = true
		default:
			var r rule
			if m := countersRE().FindStringSubmatch(l); m != nil {
				r.pkts, _ = strconv.ParseUint(m[1], 10, 64)
				r.bytes, _ = strconv.ParseUint(m[2], 10, 64)
				l = l[len(m[0]):]
			}
			if !strings.HasPrefix(l, "-A ") {
				continue
			}
			r.spec = l
			r.chain = strings.Fields(l)[1]
			if m := commentRE().FindStringSubmatch(l); m != nil {
				r.comment = m[1]
			}
			cur.rules = append(cur.rules, r)
		}
	}
	for _, name := range []string{"nat", "filter"} {
		if out[name] == nil {
			out[name] = &table{chains: map[string]bool{}}
		}
	}
	return out
}

func jumpsTo(r rule, chain string) bool { return strings.HasSuffix(r.spec, " -j "+chain) }

func del(r rule) string { return "-D" + r.spec[2:] }

// ensureFirst returns lines that make the jumps to chains the first rules
// of builtin, in order, moving them if they are elsewhere (a chain
// inserted at the top later, e.g. netns's node chains, would otherwise
// drop DNAT'd traffic before we accept it).
func ensureFirst(t *table, builtin string, chains ...string) []string {
	rs := t.in(builtin)
	ok := len(rs) >= len(chains)
	for i := 0; ok && i < len(chains); i++ {
		ok = jumpsTo(rs[i], chains[i])
	}
	if ok {
		return nil
	}
	var lines []string
	for _, r := range rs {
		for _, c := range chains {
			if jumpsTo(r, c) && strings.Fields(r.spec)[2] == "-j" {
				lines = append(lines, del(r))
			}
		}
	}
	for i, c := range chains {
		lines = append(lines, fmt.Sprintf("-I %s %d -j %s", builtin, i+1, c))
	}
	return lines
}

// ensureJump returns the line inserting rule at the top of builtin unless
// some rule there already jumps to chain.
func ensureJump(t *table, builtin, chain, rule string) []string {
	for _, r := range t.in(builtin) {
		if jumpsTo(r, chain) {
			return nil
		}
	}
	return []string{"-I " + builtin + " 1 " + rule}
}

// nodeLines creates what is missing of the node chains and their jumps.
func (k *kernel) nodeLines(d map[string]*table) map[string][]string {
	n, nat, filter := k.names, d["nat"], d["filter"]
	var nl, fl []string
	for _, c := range []string{n.node, n.post} {
		if !nat.chains[c] {
			nl = append(nl, ":"+c+" - [0:0]")
		}
	}
	nl = append(nl, ensureJump(nat, "PREROUTING", n.node,
		"! -i "+k.podIfaces+" -m addrtype --dst-type LOCAL -j "+n.node)...)
	nl = append(nl, ensureJump(nat, "OUTPUT", n.node, "-m addrtype --dst-type LOCAL -j "+n.node)...)
	nl = append(nl, ensureJump(nat, "POSTROUTING", n.post, "-j "+n.post)...)

	if !filter.chains[n.node] {
		fl = append(fl, ":"+n.node+" - [0:0]")
	}
	if !filter.chains[n.guard] {
		// kube-proxy's fix for CVE-2020-8558: route_localnet on a pod's
		// bridge would let the pod send to the host's 127.0.0.1; only
		// replies and our own DNAT'd flows may arrive there with a
		// loopback destination. (netns's host chain rejects it too; this
		// does not depend on it.)
		fl = append(fl, ":"+n.guard+" - [0:0]",
			"-A "+n.guard+" -i "+k.podIfaces+" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP")
	}
	fl = append(fl, ensureFirst(filter, "FORWARD", n.node)...)
	fl = append(fl, ensureFirst(filter, "INPUT", n.guard, n.node)...)
	fl = append(fl, ensureJump(filter, "OUTPUT", n.node, "-j "+n.node)...)
	return map[string][]string{"nat": nl, "filter": fl}
}

// localnet says whether connections from 127.0.0.0/8 can reach the rules,
// which then need route_localnet and a masquerade.
func (k *kernel) localnet() bool {
	return k.listenAddr.IsUnspecified() || k.listenAddr.IsLoopback()
}

// podLines writes the pod's chains afresh (declaring a chain flushes it)
// and adds its jumps if missing.
func (k *kernel) podLines(d map[string]*table, pod string, target netip.Addr, ports []portfwd.Allocation, bridge string) map[string][]string {
	n, c, tag := k.names, k.podChain(pod), k.tag(pod)
	ip := target.String()
	nl := []string{":" + c + " - [0:0]"}
	fl := []string{":" + c + " - [0:0]"}
	dst := ""
	if !k.listenAddr.IsUnspecified() {
		dst = " -d " + k.listenAddr.String() + "/32"
	}
	for _, a := range ports {
		h, pp := strconv.Itoa(int(a.HostPort)), strconv.Itoa(int(a.PodPort))
		cm := func(kind string) string { return " -m comment --comment " + h + ":" + kind }
		nl = append(nl, "-A "+c+dst+" -p tcp -m tcp --dport "+h+cm(kindConns)+" -j DNAT --to-destination "+ip+":"+pp)
		orig := " -d " + ip + "/32 -p tcp -m tcp --dport " + pp
		ours := " -m conntrack --ctstate DNAT --ctorigdstport " + h
		if k.maxConns > 0 {
			// Only a NEW packet reaches connlimit, which then counts the
			// open connections this rule has seen to this port. A
			// rejected SYN's entry is never confirmed, so it does not
			// count itself.
			fl = append(fl, "-A "+c+orig+" -m conntrack --ctstate NEW"+ours+" --ctdir ORIGINAL -m connlimit --connlimit-above "+
				strconv.Itoa(k.maxConns)+" --connlimit-mask 0"+cm(kindRejected)+" -j REJECT --reject-with tcp-reset")
		}
		fl = append(fl,
			"-A "+c+orig+ours+" --ctdir ORIGINAL"+cm(kindIn)+" -j ACCEPT",
			"-A "+c+" -s "+ip+"/32 -p tcp -m tcp --sport "+pp+ours+" --ctdir REPLY"+cm(kindOut)+" -j ACCEPT")
	}
	hasJump := func(t *table) bool {
		for _, r := range t.in(n.node) {
			if jumpsTo(r, c) {
				return true
			}
		}
		return false
	}
	jump := "-A " + n.node + " -m comment --comment " + tag + " -j " + c
	if !hasJump(d["nat"]) {
		nl = append(nl, jump)
	}
	if !hasJump(d["filter"]) {
		fl = append(fl, jump)
	}
	for _, r := range d["nat"].in(n.post) {
		if r.comment == tag {
			nl = append(nl, del(r))
		}
	}
	if k.localnet() {
		// --random-fully: the flow leaves from the bridge's address, which
		// the userspace relay and the gateway dial the pod from too, with
		// ports the kernel picks from the same ephemeral range. Keeping
		// the client's port made the two meet on one address and port
		// pair: a restored pod still holding such a flow in TIME_WAIT (its
		// clock stops while it sleeps; the hibernate cut the host's
		// conntrack entry) dropped the relay's SYN when its sequence
		// number was below the old flow's, and the dial hung
		// (TestHibernateIdle in CI; TestHibernateWakeOldFlows).
		nl = append(nl, "-A "+n.post+" -s 127.0.0.0/8 -o "+bridge+" -m conntrack --ctstate DNAT -m comment --comment "+tag+" -j MASQUERADE --random-fully")
	}
	return map[string][]string{"nat": nl, "filter": fl}
}

// removeLines deletes the pod's jumps, masquerade rule and chains.
func (k *kernel) removeLines(d map[string]*table, pod string, into map[string][]string) {
	n, c, tag := k.names, k.podChain(pod), k.tag(pod)
	for _, tn := range []string{"nat", "filter"} {
		t := d[tn]
		for _, r := range t.rules {
			if (r.chain == n.node || r.chain == n.post) && (r.comment == tag || jumpsTo(r, c)) {
				into[tn] = append(into[tn], del(r))
			}
		}
		if t.chains[c] {
			into[tn] = append(into[tn], "-F "+c, "-X "+c)
		}
	}
}

// ownPods returns the pods of this owner that have rules in d.
func (k *kernel) ownPods(d map[string]*table) []string {
	seen := map[string]bool{}
	var out []string
	for _, tn := range []string{"nat", "filter"} {
		for _, r := range d[tn].rules {
			if r.chain != k.node && r.chain != k.post {
				continue
			}
			if pod, ok := strings.CutPrefix(r.comment, k.ownerTag); ok && !seen[pod] {
				seen[pod] = true
				out = append(out, pod)
			}
		}
	}
	return out
}

// flow is one forwarded port as the rules say: for cutting its flows.
type flow struct {
	hostPort uint16
	target   netip.Addr
}

var (
	dportRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(` --dport (\d+) `) })
	toRE    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(` --to-destination ([0-9.]+):\d+`) })
	outRE   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(` -o (\S+) `) })
)

// podState reads back what the rules in d forward for the pod and which
// bridge its masquerade names, so Remove works after a daemon restart.
func (k *kernel) podState(d map[string]*table, pod string) (flows []flow, bridge string) {
	for _, r := range d["nat"].in(k.podChain(pod)) {
		dp, to := dportRE().FindStringSubmatch(r.spec), toRE().FindStringSubmatch(r.spec)
		if dp == nil || to == nil {
			continue
		}
		h, err1 := strconv.ParseUint(dp[1], 10, 16)
		ip, err2 := netip.ParseAddr(to[1])
		if err1 == nil && err2 == nil {
			flows = append(flows, flow{uint16(h), ip})
		}
	}
	for _, r := range d["nat"].in(k.post) {
		if r.comment == k.tag(pod) {
			if m := outRE().FindStringSubmatch(r.spec); m != nil {
				bridge = m[1]
			}
		}
	}
	return flows, bridge
}

// podCounters sums the pod's rule counters per host port.
func (k *kernel) podCounters(d map[string]*table, pod string) map[uint16]portfwd.Counters {
	out := map[uint16]portfwd.Counters{}
	c := k.podChain(pod)
	for _, tn := range []string{"nat", "filter"} {
		for _, r := range d[tn].in(c) {
			hs, kind, ok := strings.Cut(r.comment, ":")
			h, err := strconv.ParseUint(hs, 10, 16)
			if !ok || err != nil {
				continue
			}
			v := out[uint16(h)]
			switch kind {
			case kindConns:
				v.ConnsTotal += r.pkts
			case kindRejected:
				v.ConnsRejected += r.pkts
			case kindIn:
				v.BytesIn += r.bytes
			case kindOut:
				v.BytesOut += r.bytes
			}
			out[uint16(h)] = v
		}
	}
	return out
}
