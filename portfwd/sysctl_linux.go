package portfwd

import (
	"os"
	"strconv"
	"strings"
)

// ephemeralOverlap reports the part of the pool the kernel may hand out as
// ephemeral ports for outgoing connections (ip_local_port_range minus
// ip_local_reserved_ports). Such a port is busy while that connection
// lives, so it is skipped or, if taken after Allocate, fails Start. The
// node should reserve the pool: sysctl net.ipv4.ip_local_reserved_ports.
func ephemeralOverlap(lo, hi uint16) (n int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	elo, err1 := strconv.Atoi(f[0])
	ehi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return 0
	}
	reserved := map[int]bool{}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_reserved_ports"); err == nil {
		for _, r := range strings.Split(strings.TrimSpace(string(b)), ",") {
			a, z, ok := strings.Cut(r, "-")
			from, err := strconv.Atoi(a)
			if err != nil {
				continue
			}
			to := from
			if ok {
				if to, err = strconv.Atoi(z); err != nil {
					continue
				}
			}
			for p := max(from, int(lo)); p <= min(to, int(hi)); p++ {
				reserved[p] = true
			}
		}
	}
	for p := max(int(lo), elo); p <= min(int(hi), ehi); p++ {
		if !reserved[p] {
			n++
		}
	}
	return n
}
