package oci

import (
	"os"
	"testing"
)

func TestParseTHP(t *testing.T) {
	for in, want := range map[string]string{
		"always [madvise] never\n": "madvise",
		"[always] madvise never\n": "always",
		"always madvise [never]":   "never",
	} {
		got, err := parseTHP(in)
		if err != nil || got != want {
			t.Errorf("parseTHP(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "always madvise never", "[]"} {
		if got, err := parseTHP(in); err == nil {
			t.Errorf("parseTHP(%q) = %q, want an error", in, got)
		}
	}
}

func TestHostTHP(t *testing.T) {
	if _, err := os.Stat(THPPath); err != nil {
		t.Skipf("no %s on this kernel", THPPath)
	}
	mode, err := HostTHP()
	if err != nil {
		t.Fatal(err)
	}
	switch mode {
	case "always", "madvise", "never":
	default:
		t.Fatalf("HostTHP() = %q", mode)
	}
}
