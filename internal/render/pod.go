package render

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
)

// FillURLs gives each forwarded port of ps a URL, http://host:<host port>.
// An explicit host replaces the node's URLs; with host "" they are kept
// and only missing ones get DefaultURLHost.
func FillURLs(host string, ps ...*api.Pod) {
	explicit := host != ""
	if !explicit {
		host = DefaultURLHost
	}
	for _, p := range ps {
		if p == nil {
			continue
		}
		for i := range p.Ports {
			port := &p.Ports[i]
			if port.External <= 0 || (port.URL != "" && !explicit) {
				continue
			}
			port.URL = URL(host, port.External)
		}
	}
}

// portURL is where a port is reached: the node's URL, else one on
// DefaultURLHost, else "" for a port without a host port.
func portURL(port api.PortStatus) string {
	switch {
	case port.URL != "":
		return port.URL
	case port.External > 0:
		return URL(DefaultURLHost, port.External)
	}
	return ""
}

// PortsSummary is a pod's ports for one table cell: name=URL, the
// gateway's URL when the node has one (the default way in), else the
// forwarded port's; name:port for a port with neither.
func PortsSummary(p *api.Pod) string {
	parts := make([]string, 0, len(p.Ports))
	for _, port := range p.Ports {
		if port.Gateway != "" {
			parts = append(parts, port.Name+"="+port.Gateway)
		} else if u := portURL(port); u != "" {
			parts = append(parts, port.Name+"="+u)
		} else {
			parts = append(parts, fmt.Sprintf("%s:%d", port.Name, port.Internal))
		}
	}
	return strings.Join(parts, " ")
}

// Pods writes a pod list as table rows (tab-separated, for NewTable):
// ID NAME STATE TEMPLATE IP PORTS/URLS AGE. A failed pod's state carries
// its reason.
func Pods(w io.Writer, ps []*api.Pod, now time.Time) {
	fmt.Fprintln(w, "ID\tNAME\tSTATE\tTEMPLATE\tIP\tPORTS/URLS\tAGE")
	for _, p := range ps {
		state := string(p.State)
		if p.Reason != "" && p.State == lifecycle.Failed {
			state += " (" + p.Reason + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Name, state, Dash(p.Template),
			Dash(p.IP), Dash(PortsSummary(p)), Age(p.CreatedAt, now))
	}
}

// Pod writes one pod as key/value rows, with a row per port and service.
func Pod(w io.Writer, p *api.Pod, now time.Time) {
	kv := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%s:\t%s\n", k, v)
		}
	}
	kv("ID", p.ID)
	kv("Name", p.Name)
	state := string(p.State)
	if p.Reason != "" {
		state += " (" + p.Reason + ")"
	}
	kv("State", state)
	kv("Template", p.Template)
	kv("Image", p.Image)
	kv("IP", p.IP)
	if !p.CreatedAt.IsZero() {
		kv("Created", p.CreatedAt.Local().Format(time.RFC3339)+" ("+Age(p.CreatedAt, now)+" ago)")
	}
	for _, port := range p.Ports {
		pub := ""
		if port.Public {
			pub = " (public)"
		}
		fmt.Fprintf(w, "Port %s:\t%d -> %s%s\n", port.Name, port.Internal, Dash(portURL(port)), pub)
		if port.Gateway != "" {
			fmt.Fprintf(w, "Gateway %s:\t%s (pod url %s %s for a link)\n", port.Name, port.Gateway, p.ID, port.Name)
		}
	}
	for _, s := range p.Services {
		fmt.Fprintf(w, "Service %s:\t%s (restarts %d)\n", s.Name, ServiceState(s), s.Restarts)
	}
}
