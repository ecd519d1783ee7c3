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
	if err != nil || c.Ports.Min != 30000 || c.Network.Pool != "10.88.0.0/16" || c.Platform != "systrap" || c.CgroupParent != "/pinacle" {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	// Nothing open by default: host ports and the gateway on loopback.
	if c.Ports.ListenAddr != "127.0.0.1" || c.Ports.PublicListenAddr != "0.0.0.0" || c.Gateway.ListenAddr != "127.0.0.1" ||
		c.Gateway.Port != DefaultGatewayPort || c.Gateway.Domain != "localhost" || c.Gateway.URLPort != DefaultGatewayPort {
		t.Fatalf("defaults: ports %+v, gateway %+v", c.Ports, c.Gateway)
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
	os.WriteFile(p, []byte("gateway: {domain: pods.example.com, port: 8443, urlScheme: https, urlPort: 443, defaultTTL: 1h}\n"), 0o644)
	if c, err := Load(p, true); err != nil || c.Gateway.Domain != "pods.example.com" || c.Gateway.Port != 8443 ||
		c.Gateway.URLPort != 443 || c.Gateway.DefaultTTL.Duration != time.Hour || !*c.Gateway.Enabled {
		t.Fatalf("gateway: %+v, %v", c.Gateway, err)
	}
	os.WriteFile(p, []byte("idleTimeout: 30m\n"), 0o644)
	if c, err := Load(p, true); err != nil || c.IdleTimeout.Duration != 30*time.Minute {
		t.Fatalf("idleTimeout: 30m: %+v, %v", c, err)
	}
	os.WriteFile(p, []byte("snapshots: {auto: true, maxMb: 0}\n"), 0o644)
	if c, err := Load(p, true); err != nil || !c.Snapshots.Auto || *c.Snapshots.MaxMB != 0 || !*c.Snapshots.Enabled {
		t.Fatalf("snapshots: %+v, %v", c.Snapshots, err)
	}
	os.WriteFile(p, []byte("cgroupParent: /pinacle-rig/n1\n"), 0o644)
	if c, err := Load(p, true); err != nil || c.CgroupParent != "/pinacle-rig/n1" {
		t.Fatalf("cgroupParent: %+v, %v", c, err)
	}
	for body, want := range map[string]string{
		"prots: {}\n":                              "prots",
		"ports: {min: 500, max: 100}\n":            "ports: range",
		"network: {pool: 10.0.0.0/33}\n":           "network.pool",
		"network: {subnetBits: 8}\n":               "network.subnetBits",
		"platform: kvm2\n":                         "platform",
		"ports: {listenAddr: everywhere}\n":        "ports.listenAddr",
		"ports: {publicListenAddr: x}\n":           "ports.publicListenAddr",
		"gateway: {domain: Bad_Domain}\n":          "gateway.domain",
		"gateway: {port: 70000}\n":                 "gateway.port",
		"gateway: {urlScheme: ftp}\n":              "gateway.urlScheme",
		"gateway: {defaultTTL: 48h, maxTTL: 1h}\n": "gateway.defaultTTL",
		"gateway: {listenAddr: any}\n":             "gateway.listenAddr",
		"idleTimeout: 10ms\n":                      "idleTimeout",
		"idleTimeout: -1m\n":                       "idleTimeout",
		"snapshots: {maxMb: -1}\n":                 "snapshots.maxMb",
		"snapshots: {auto: yes please}\n":          "snapshots",
		"cgroupParent: pinacle\n":                  "cgroupParent",
		"cgroupParent: /\n":                        "cgroupParent",
		"cgroupParent: /a/../b\n":                  "cgroupParent",
		"cgroupParent: \"/a b\"\n":                 "cgroupParent",
	} {
		os.WriteFile(p, []byte(body), 0o644)
		_, err := Load(p, true)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want invalid argument naming %s", body, err, want)
		}
	}
}

func TestWarmPoolConfig(t *testing.T) {
	var c Config
	c.Default()
	if *c.WarmPool.Recent != 1 || *c.WarmPool.Max != 4 || c.Validate() != nil {
		t.Fatalf("defaults: recent %d max %d: %v", *c.WarmPool.Recent, *c.WarmPool.Max, c.Validate())
	}
	bad := -1
	c.WarmPool.Max = &bad
	c.WarmPool.Entries = []WarmPoolEntry{{Template: "nodejs", Image: "x"}, {Image: "x", Tier: "dev.huge", Count: 99}}
	err := c.Validate()
	for _, field := range []string{"warmPool.max", "warmPool.entries[0]: want exactly one", "warmPool.entries[1].tier", "warmPool.entries[1].count"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("error %v does not name %s", err, field)
		}
	}
}
