package units

import "testing"

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "512": 512, "1k": 1024, "256M": 256 << 20, "1G": 1 << 30, "2Gi": 2 << 30, "1.5g": 3 << 29, "10MB": 10 << 20} {
		got, err := ParseBytes("--memory", in)
		if err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"x", "-1M", "1Q", "M"} {
		if _, err := ParseBytes("--memory", bad); err == nil {
			t.Errorf("ParseBytes(%q) succeeded", bad)
		}
	}
}
