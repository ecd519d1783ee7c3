package e2e

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestNodeMetricsEndpoint scrapes the Prometheus endpoint of a daemon with
// one running pod that has served one connection.
func TestNodeMetricsEndpoint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	d := startDaemonWith(t, func(cfg string) string { return cfg + fmt.Sprintf("metricsAddr: %q\n", addr) }, nil)
	p, r := d.create(webSpec("metered", ""))
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	if _, err := httpGet(p.Ports[0].URL+"/index.html", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	var body string
	poll(t, 20*time.Second, "metrics with the pod's connection counted", func() bool {
		body, err = httpGet("http://"+addr+"/metrics", 5*time.Second)
		return err == nil && strings.Contains(body, fmt.Sprintf(`pinacle_port_connections_total{pod=%q,port="web"} 1`, p.ID))
	})
	for _, want := range []string{
		`pinacle_pods{state="running"} 1`,
		fmt.Sprintf(`pinacle_pod_memory_limit_bytes{pod=%q} 2.68435456e+08`, p.ID),
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !regexp.MustCompile(fmt.Sprintf(`pinacle_pod_memory_bytes\{pod=%q\} [1-9]`, p.ID)).MatchString(body) {
		t.Errorf("no memory figure for the pod:\n%s", body)
	}
}
