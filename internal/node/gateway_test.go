package node

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/pinacle/pinacle-node/gateway"
	"github.com/pinacle/pinacle-node/internal/nodeconfig"
)

func TestGatewayFromConfig(t *testing.T) {
	cfg := &nodeconfig.Config{DataRoot: t.TempDir()}
	cfg.Default()
	res := gateway.ResolverFunc(func(context.Context, string, string) (gateway.Backend, error) { return gateway.Backend{}, nil })
	g, err := Gateway(cfg, res, slog.New(slog.DiscardHandler))
	if err != nil || g == nil {
		t.Fatalf("Gateway: %v, %v", g, err)
	}
	if fi, err := os.Stat(filepath.Join(GatewayDir(cfg), gateway.KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key: %v %v, want 0600 under the data root", fi, err)
	}
	if u := g.HostURL("p1", "app"); u != "http://app-p1.localhost:29000/" {
		t.Errorf("HostURL %q", u)
	}
	// ListenGateway binds gateway.listenAddr:port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Port = ln.Addr().(*net.TCPAddr).Port
	n := &Node{Config: cfg, Gateway: g}
	if _, err := n.ListenGateway(); err == nil {
		t.Error("ListenGateway on a taken port succeeded")
	}
	ln.Close()
	gl, err := n.ListenGateway()
	if err != nil {
		t.Fatal(err)
	}
	if a := gl.Addr().String(); a != ln.Addr().String() {
		t.Errorf("listening on %s, want %s", a, ln.Addr())
	}
	gl.Close()

	off := false
	cfg.Gateway.Enabled = &off
	if g, err := Gateway(cfg, res, slog.New(slog.DiscardHandler)); err != nil || g != nil {
		t.Errorf("gateway.enabled false: %v, %v; want none", g, err)
	}
}
