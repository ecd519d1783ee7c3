// Package units parses the human sizes users write on command lines (256M, 1G).
package units

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

var suffixes = []struct {
	s string
	n int64
}{
	{"ki", 1 << 10}, {"mi", 1 << 20}, {"gi", 1 << 30}, {"ti", 1 << 40},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
}

// ParseBytes parses a size such as 512, 256M, 1.5G or 2Gi (binary units;
// a trailing B is allowed). Empty is 0. flag names the input in errors.
func ParseBytes(flag, s string) (int64, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, nil
	}
	v := strings.TrimSuffix(strings.ToLower(in), "b")
	mult := int64(1)
	for _, x := range suffixes {
		if strings.HasSuffix(v, x.s) {
			v, mult = strings.TrimSuffix(v, x.s), x.n
			break
		}
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("%s %q: want a size like 512M or 2G: %w", flag, s, errdefs.ErrInvalidArgument)
	}
	return int64(f * float64(mult)), nil
}
