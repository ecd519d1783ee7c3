package gateway

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTokenSignVerify(t *testing.T) {
	s := signer{key: bytes.Repeat([]byte{7}, keySize)}
	now := time.Unix(1_700_000_000, 0)
	c := claims{Pod: testPod, Port: "web-terminal", Epoch: 42, Expires: now.Add(time.Hour)}
	tok := s.sign(c)
	got, err := s.verify(tok, now)
	if err != nil || got != c {
		t.Fatalf("verify = %+v, %v; want %+v", got, err, c)
	}
	if _, err := s.verify(tok, now.Add(time.Hour)); err != errExpired {
		t.Errorf("at expiry: err = %v, want expired", err)
	}
	other := signer{key: bytes.Repeat([]byte{8}, keySize)}
	if _, err := other.verify(tok, now); err != errSignature {
		t.Errorf("other key: err = %v, want bad signature", err)
	}
	// Flip one character of each part: never accepted.
	for i := range len(tok) {
		if tok[i] == '.' {
			continue
		}
		b := []byte(tok)
		b[i] ^= 1
		if _, err := s.verify(string(b), now); err == nil {
			t.Fatalf("tampered token (byte %d) accepted", i)
		}
	}
	// A longer expiry signed under the same payload layout is a different MAC.
	parts := strings.Split(tok, ".")
	longer := s.sign(claims{Pod: c.Pod, Port: c.Port, Epoch: c.Epoch, Expires: now.Add(48 * time.Hour)})
	spliced := parts[0] + "." + strings.Split(longer, ".")[1] + "." + parts[2]
	if _, err := s.verify(spliced, now); err != errSignature {
		t.Errorf("spliced payload: err = %v, want bad signature", err)
	}
	for _, bad := range []string{"", "v1", "v1..", "v2." + parts[1] + "." + parts[2], tok + ".x", "v1.!!!." + parts[2]} {
		if _, err := s.verify(bad, now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Pod and port are length-prefixed: "ab"+"c" and "a"+"bc" sign differently.
func TestTokenPayloadUnambiguous(t *testing.T) {
	a := claims{Pod: "ab", Port: "c"}.payload()
	b := claims{Pod: "a", Port: "bc"}.payload()
	if bytes.Equal(a, b) {
		t.Fatal("two claims encode alike")
	}
}

func TestKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gateway")
	k1, err := loadKey(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, %v; want 0600", fi.Mode(), err)
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", di.Mode())
	}
	k2, err := loadKey(filepath.Join(dir, KeyFile))
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("key not reused: %v", err)
	}
	os.Chmod(filepath.Join(dir, KeyFile), 0o644)
	if _, err := loadKey(filepath.Join(dir, KeyFile)); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, KeyFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("a readable key was not made 0600: %v", fi.Mode())
	}
	os.WriteFile(filepath.Join(dir, KeyFile), []byte("short"), 0o600)
	if _, err := loadKey(filepath.Join(dir, KeyFile)); err == nil {
		t.Error("a short key was accepted")
	}
}

func TestParseHost(t *testing.T) {
	for _, tc := range []struct {
		host, pod, port string
		ok              bool
	}{
		{"app-p0123456789.localhost:8089", "p0123456789", "app", true},
		{"web-terminal-p01.localhost", "p01", "web-terminal", true},
		{"APP-P01.LocalHost.", "p01", "app", true},
		{"app-p01.localhost.evil.com", "", "", false},
		{"app-p01.evil.com", "", "", false},
		{"localhost:8089", "", "", false},
		{"x.app-p01.localhost", "", "", false},
		{"p01.localhost", "", "", false},
		{"app-.localhost", "", "", false},
		{"-p01.localhost", "", "", false},
		{"127.0.0.1:8089", "", "", false},
		{"", "", "", false},
	} {
		pod, port, ok := parseHost(tc.host, "localhost")
		if pod != tc.pod || port != tc.port || ok != tc.ok {
			t.Errorf("parseHost(%q) = %q, %q, %v; want %q, %q, %v", tc.host, pod, port, ok, tc.pod, tc.port, tc.ok)
		}
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"": "/", "/": "/", "/a?b=c": "/a?b=c", "//evil.com": "/", "/\\evil.com": "/",
		"https://evil.com": "/", "evil": "/", "/a\r\nSet-Cookie: x": "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
