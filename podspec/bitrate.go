package podspec

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// BitRate is a number of bits (per second, for rates). It is written as a
// string with a decimal (SI) unit like tc's, "20Mbit", "512kbit", "1.5gbit",
// or "20mbps", or as a plain number of bits.
type BitRate uint64

var bitUnits = []struct {
	suffix string
	mult   float64
}{
	// Longest suffixes first so "kbit" is not read as "bit".
	{"tbit", 1e12}, {"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3},
	{"tbps", 1e12}, {"gbps", 1e9}, {"mbps", 1e6}, {"kbps", 1e3},
	{"bit", 1}, {"bps", 1},
}

// ParseBitRate parses "20Mbit"-style strings (units are case-insensitive).
func ParseBitRate(s string) (BitRate, error) {
	in := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range bitUnits {
		if strings.HasSuffix(in, u.suffix) {
			in, mult = strings.TrimSpace(strings.TrimSuffix(in, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(in, 64)
	if err != nil || in == "" || strings.ContainsAny(in, "xXpP_") {
		return 0, fmt.Errorf("invalid bit rate %q: want e.g. \"20Mbit\", \"512kbit\" or a number of bits", s)
	}
	return bitsFromFloat(s, f*mult)
}

func bitsFromFloat(orig string, f float64) (BitRate, error) {
	if math.IsNaN(f) || f < 0 {
		return 0, fmt.Errorf("invalid bit rate %q: must not be negative", orig)
	}
	if f >= math.MaxUint64/2 {
		return 0, fmt.Errorf("invalid bit rate %q: too large", orig)
	}
	return BitRate(math.Round(f)), nil
}

// String writes the rate with the largest unit that keeps it exact.
func (r BitRate) String() string {
	for _, u := range []struct {
		name string
		mult uint64
	}{{"Tbit", 1e12}, {"Gbit", 1e9}, {"Mbit", 1e6}, {"kbit", 1e3}} {
		if r >= BitRate(u.mult) && uint64(r)%u.mult == 0 {
			return fmt.Sprintf("%d%s", uint64(r)/u.mult, u.name)
		}
	}
	return fmt.Sprintf("%dbit", uint64(r))
}

// MarshalJSON writes the canonical string form.
func (r BitRate) MarshalJSON() ([]byte, error) { return json.Marshal(r.String()) }

// UnmarshalJSON accepts a string with a unit or a number of bits.
func (r *BitRate) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := ParseBitRate(s)
		if err != nil {
			return err
		}
		*r = v
		return nil
	}
	var n float64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("invalid bit rate %s: want a string like \"20Mbit\" or a number of bits", b)
	}
	v, err := bitsFromFloat(string(b), n)
	if err != nil {
		return err
	}
	*r = v
	return nil
}
