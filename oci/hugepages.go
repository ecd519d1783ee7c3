package oci

import (
	"fmt"
	"os"
	"strings"
)

// THPPath is the host's transparent huge page mode for anonymous memory.
const THPPath = "/sys/kernel/mm/transparent_hugepage/enabled"

// HostTHP reports the host's transparent huge page mode ("always",
// "madvise" or "never").
//
// It matters to sandbox start: runsc, its gofer and sentry are Go programs
// that never madvise their heaps, so under "madvise" every page they touch
// is a separate fault, and faults are dear on a VM. "always" starts a
// sandbox faster for a little more host memory per pod (docs/runtime.md,
// "Host tuning", has the figures and the bench that measures them).
func HostTHP() (string, error) {
	b, err := os.ReadFile(THPPath)
	if err != nil {
		return "", err
	}
	return parseTHP(string(b))
}

// parseTHP picks the bracketed mode out of "always [madvise] never".
func parseTHP(s string) (string, error) {
	for _, f := range strings.Fields(s) {
		if len(f) > 2 && f[0] == '[' && f[len(f)-1] == ']' {
			return f[1 : len(f)-1], nil
		}
	}
	return "", fmt.Errorf("%s: no selected mode in %q", THPPath, strings.TrimSpace(s))
}
