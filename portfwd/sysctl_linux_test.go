package portfwd

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestEphemeralOverlap(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Skipf("no ip_local_port_range: %v", err)
	}
	f := strings.Fields(string(b))
	elo, _ := strconv.Atoi(f[0])
	if elo < 2 {
		t.Skipf("ephemeral range starts at %d", elo)
	}
	// A pool wholly below the ephemeral range never overlaps.
	if n := ephemeralOverlap(1, uint16(elo-1)); n != 0 {
		t.Fatalf("overlap below the range = %d", n)
	}
}
