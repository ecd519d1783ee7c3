package nodeconfig

import (
	"net/netip"
	"regexp"
	"time"
)

// DefaultGatewayPort is the gateway's port: outside the pod port pool,
// and forwarded to the Mac by lima.yaml.
const DefaultGatewayPort = 29000

func (g *Gateway) defaults() {
	if g.Enabled == nil {
		on := true
		g.Enabled = &on
	}
	if g.ListenAddr == "" {
		g.ListenAddr = "127.0.0.1"
	}
	if g.Port == 0 {
		g.Port = DefaultGatewayPort
	}
	if g.Domain == "" {
		g.Domain = "localhost"
	}
	if g.URLScheme == "" {
		g.URLScheme = "http"
	}
	if g.URLPort == 0 {
		g.URLPort = g.Port
	}
	if g.DefaultTTL.Duration == 0 {
		g.DefaultTTL.Duration = 24 * time.Hour
	}
	if g.MaxTTL.Duration == 0 {
		g.MaxTTL.Duration = 30 * 24 * time.Hour
	}
	if g.MaxConns == 0 {
		g.MaxConns = 4096
	}
	if g.MaxConnsPerPod == 0 {
		g.MaxConnsPerPod = 512
	}
}

var domainRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)

func (g *Gateway) validate(bad func(field, format string, args ...any)) {
	if _, err := netip.ParseAddr(g.ListenAddr); err != nil {
		bad("gateway.listenAddr", "%q is not an IP address", g.ListenAddr)
	}
	if g.Port < 1 || g.Port > 65535 {
		bad("gateway.port", "%d: want 1-65535", g.Port)
	}
	if g.URLPort < 1 || g.URLPort > 65535 {
		bad("gateway.urlPort", "%d: want 1-65535", g.URLPort)
	}
	if len(g.Domain) > 200 || !domainRe.MatchString(g.Domain) {
		bad("gateway.domain", "%q: want a lowercase DNS name such as localhost or pods.example.com", g.Domain)
	}
	if g.URLScheme != "http" && g.URLScheme != "https" {
		bad("gateway.urlScheme", "%q: want http or https", g.URLScheme)
	}
	if g.DefaultTTL.Duration <= 0 || g.MaxTTL.Duration < g.DefaultTTL.Duration {
		bad("gateway.defaultTTL", "%s (maxTTL %s): want 0 < defaultTTL <= maxTTL", g.DefaultTTL.Duration, g.MaxTTL.Duration)
	}
	if g.MaxConns < 1 || g.MaxConnsPerPod < 1 {
		bad("gateway.maxConns", "%d, per pod %d: want at least 1", g.MaxConns, g.MaxConnsPerPod)
	}
}
