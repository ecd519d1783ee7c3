package netns

import (
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"net/netip"
)

const cniVersion = "1.0.0"

// confList renders the per-pod CNI network: a bridge of its own, acting
// as the pod's gateway, host-local IPAM confined to the pod's subnet, and
// the bandwidth plugin when limits are set. Loopback is brought up by
// prepareNS directly, saving one plugin exec.
//
// The bridge plugin's own masquerade (ipMasq) is off: it runs one iptables
// exec per rule (most of a setup's time, and as much again on DEL;
// docs/networking.md), and its DEL needs the pod's address, which runsc
// strips. The same
// rules go into the pod's single iptables-restore instead (masqLines).
func confList(a *Attachment, ipamDir string, bw *Bandwidth) ([]byte, error) {
	plugins := []map[string]any{{
		"type":             "bridge",
		"bridge":           a.Bridge,
		"isGateway":        true,
		"isDefaultGateway": true,
		"ipMasq":           false,
		"ipam": map[string]any{
			"type":    "host-local",
			"dataDir": ipamDir,
			"ranges": [][]map[string]string{{{
				"subnet":  a.Subnet.String(),
				"gateway": a.Gateway.String(),
			}}},
		},
	}}
	if !bw.isZero() {
		p := map[string]any{"type": "bandwidth"}
		if bw.IngressRate > 0 {
			p["ingressRate"], p["ingressBurst"] = bw.IngressRate, defaultBurst(bw.IngressRate, bw.IngressBurst)
		}
		if bw.EgressRate > 0 {
			p["egressRate"], p["egressBurst"] = bw.EgressRate, defaultBurst(bw.EgressRate, bw.EgressBurst)
		}
		plugins = append(plugins, p)
	}
	return json.Marshal(map[string]any{
		"cniVersion": cniVersion,
		"name":       a.Network,
		"plugins":    plugins,
	})
}

// defaultBurst picks a tbf burst when the spec gives none: 100 ms worth of
// the rate, at least 64 KiB, so a rate is met without a long initial spike.
func defaultBurst(rate, burst uint64) uint64 {
	if burst > 0 {
		return burst
	}
	return max(rate/10, 64*1024*8)
}

// hashName mirrors containernetworking/plugins pkg/utils
// MustFormatHashWithPrefix, so that we can find the masquerade chain and ifb
// device the plugins create even when they could not clean them up.
func hashName(length int, prefix, toHash string) string {
	sum := sha512.Sum512([]byte(toHash))
	return fmt.Sprintf("%s%x", prefix, sum)[:length]
}

// gatewayOf is the first host address of a subnet; the pod gets the next.
func gatewayOf(p netip.Prefix) netip.Addr { return nthAddr(p, 1) }
