package nodeconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	c, err := Load(filepath.Join(dir, "missing.yaml"), false)
	if err != nil || c.Ports.Min != 30000 || c.Network.Pool != "10.88.0.0/16" || c.Platform != "systrap" {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml"), true); err == nil {
		t.Fatal("a named config that does not exist was accepted")
	}
	p := filepath.Join(dir, "node.yaml")
	os.WriteFile(p, []byte("ports:\n  min: 31000\n  max: 31010\nmetricsAddr: 127.0.0.1:9100\n"), 0o644)
	if c, err := Load(p, true); err != nil || c.Ports.Min != 31000 || c.MetricsAddr != "127.0.0.1:9100" || !*c.Ports.KernelForward {
		t.Fatalf("%+v, %v", c, err)
	}
	os.WriteFile(p, []byte("ports:\n  kernelForward: false\n"), 0o644)
	if c, err := Load(p, true); err != nil || *c.Ports.KernelForward {
		t.Fatalf("kernelForward: false not honoured: %+v, %v", c, err)
	}
	os.WriteFile(p, []byte("idleTimeout: 30m\n"), 0o644)
	if c, err := Load(p, true); err != nil || c.IdleTimeout.Duration != 30*time.Minute {
		t.Fatalf("idleTimeout: 30m: %+v, %v", c, err)
	}
	for body, want := range map[string]string{
		"prots: {}\n":                       "prots",
		"ports: {min: 500, max: 100}\n":     "ports: range",
		"network: {pool: 10.0.0.0/33}\n":    "network.pool",
		"network: {subnetBits: 8}\n":        "network.subnetBits",
		"platform: kvm2\n":                  "platform",
		"ports: {listenAddr: everywhere}\n": "ports.listenAddr",
		"idleTimeout: 10ms\n":               "idleTimeout",
		"idleTimeout: -1m\n":                "idleTimeout",
	} {
		os.WriteFile(p, []byte(body), 0o644)
		_, err := Load(p, true)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want invalid argument naming %s", body, err, want)
		}
	}
}
