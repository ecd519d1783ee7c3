package hostcli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"
)

// The host CLI decodes the node's JSON into its own small views instead of
// importing the node's packages: those are Linux-only in places, and the
// JSON is the contract (docs/cli.md). Unknown fields are ignored, so a newer
// node works with an older host CLI.

// Pod is the host's view of a pod (pinacle-node pod get -o json).
type Pod struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	State    string    `json:"state"`
	Reason   string    `json:"reason,omitempty"`
	Template string    `json:"template,omitempty"`
	Image    string    `json:"image"`
	IP       string    `json:"ip,omitempty"`
	Ports    []Port    `json:"ports,omitempty"`
	Services []Service `json:"services,omitempty"`
	Created  time.Time `json:"createdAt"`
}

// Port is one forwarded pod port.
type Port struct {
	Name     string `json:"name"`
	Internal int    `json:"internal"`
	External int    `json:"external"`
	URL      string `json:"url,omitempty"`
}

// Service is one service of a pod as its supervisor reports it.
type Service struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Health   string `json:"health,omitempty"`
	Restarts int    `json:"restarts"`
}

// Image is the host's view of an image (pinacle-node image ls -o json).
type Image struct {
	Refs    []string  `json:"refs"`
	ID      string    `json:"id"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
}

// Event is one pod event (pinacle-node pod events -o json, one per line).
type Event struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	PodID   string    `json:"podId,omitempty"`
	Type    string    `json:"type"`
	From    string    `json:"from,omitempty"`
	To      string    `json:"to,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Message string    `json:"message,omitempty"`
}

// Template is one row of pinacle-node template ls -o json.
type Template struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Image       string   `json:"image"`
	Tier        string   `json:"tier"`
	Ports       []string `json:"ports"`
	Source      string   `json:"source"`
}

// URLs lists a pod's port URLs (name=url), or host ports when the node gave
// no URL. Lima forwards the VM's 30000-40000 to the Mac's 127.0.0.1, so
// http://127.0.0.1:PORT works on the Mac as is.
func (p *Pod) URLs() string {
	var parts []string
	for _, port := range p.Ports {
		switch {
		case port.URL != "":
			parts = append(parts, port.Name+"="+port.URL)
		case port.External > 0:
			parts = append(parts, fmt.Sprintf("%s=http://127.0.0.1:%d", port.Name, port.External))
		default:
			parts = append(parts, fmt.Sprintf("%s:%d", port.Name, port.Internal))
		}
	}
	return strings.Join(parts, " ")
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// RenderPods prints a pod list: ID NAME STATE TEMPLATE PORTS/URLS.
func RenderPods(w io.Writer, data []byte) error {
	var ps []Pod
	if err := json.Unmarshal(data, &ps); err != nil {
		return fmt.Errorf("decoding the node's pod list: %w", err)
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tNAME\tSTATE\tTEMPLATE\tPORTS/URLS")
	for _, p := range ps {
		state := p.State
		if p.Reason != "" && p.State == "failed" {
			state += " (" + p.Reason + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.ID, p.Name, state, dash(p.Template), dash(p.URLs()))
	}
	return tw.Flush()
}

// RenderPod prints one pod as a key/value table with a line per port URL
// and service.
func RenderPod(w io.Writer, data []byte) error {
	var p Pod
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("decoding the node's pod: %w", err)
	}
	tw := newTable(w)
	kv := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	kv("ID", p.ID)
	kv("Name", p.Name)
	state := p.State
	if p.Reason != "" {
		state += " (" + p.Reason + ")"
	}
	kv("State", state)
	kv("Template", p.Template)
	kv("Image", p.Image)
	kv("IP", p.IP)
	for _, port := range p.Ports {
		target := port.URL
		if target == "" && port.External > 0 {
			target = fmt.Sprintf("http://127.0.0.1:%d", port.External)
		}
		fmt.Fprintf(tw, "Port %s:\t%d -> %s\n", port.Name, port.Internal, dash(target))
	}
	for _, s := range p.Services {
		st := s.State
		if s.Health != "" && s.Health != s.State {
			st += ", " + s.Health
		}
		fmt.Fprintf(tw, "Service %s:\t%s (restarts %d)\n", s.Name, st, s.Restarts)
	}
	return tw.Flush()
}

// RenderDeleted prints pod delete results: "deleted ID" per deleted pod.
func RenderDeleted(w io.Writer, data []byte) error {
	var rs []struct {
		ID      string `json:"id"`
		Deleted bool   `json:"deleted"`
	}
	if err := json.Unmarshal(data, &rs); err != nil {
		return fmt.Errorf("decoding the node's delete result: %w", err)
	}
	for _, r := range rs {
		if r.Deleted {
			fmt.Fprintf(w, "deleted %s\n", r.ID)
		}
	}
	return nil
}

// RenderImages prints an image list: REF ID SIZE.
func RenderImages(w io.Writer, data []byte) error {
	var imgs []Image
	if err := json.Unmarshal(data, &imgs); err != nil {
		return fmt.Errorf("decoding the node's image list: %w", err)
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "REF\tID\tSIZE")
	for _, img := range imgs {
		id := strings.TrimPrefix(img.ID, "sha256:")
		if len(id) > 12 {
			id = id[:12]
		}
		refs := img.Refs
		if len(refs) == 0 {
			refs = []string{"<none>"}
		}
		for _, r := range refs {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r, id, HumanBytes(img.Size))
		}
	}
	return tw.Flush()
}

// RenderTemplates prints a template list: NAME DESCRIPTION IMAGE TIER PORTS.
func RenderTemplates(w io.Writer, data []byte) error {
	var ts []Template
	if err := json.Unmarshal(data, &ts); err != nil {
		return fmt.Errorf("decoding the node's template list: %w", err)
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tDESCRIPTION\tIMAGE\tTIER\tPORTS")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.Description, t.Image, dash(t.Tier), dash(strings.Join(t.Ports, ",")))
	}
	return tw.Flush()
}

// RenderEvents prints newline-delimited events as a table.
func RenderEvents(w io.Writer, data []byte) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "SEQ\tTIME\tPOD\tTYPE\tCHANGE\tREASON")
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var ev Event
		if err := json.Unmarshal(line, &ev); err != nil {
			return fmt.Errorf("decoding the node's events: %w", err)
		}
		change := ""
		if ev.From != "" || ev.To != "" {
			change = dash(ev.From) + " -> " + ev.To
		}
		reason := ev.Reason
		if ev.Message != "" {
			reason = strings.TrimPrefix(reason+": "+ev.Message, ": ")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", ev.Seq, ev.Time.Local().Format(time.DateTime), dash(ev.PodID), ev.Type, dash(change), reason)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return tw.Flush()
}

// RenderGeneric prints any JSON document as YAML: readable for objects
// that have no table of their own (metrics, health, inspect).
func RenderGeneric(w io.Writer, data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil
	}
	b, err := yaml.JSONToYAML(data)
	if err != nil {
		// Not one JSON document (e.g. several lines): show it as it came.
		_, werr := w.Write(append(data, '\n'))
		return werr
	}
	_, err = w.Write(b)
	return err
}

// RenderInstance prints a Lima instance as a key/value table.
func RenderInstance(w io.Writer, in *Instance) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "VM:\t%s\n", in.Name)
	fmt.Fprintf(tw, "Status:\t%s\n", in.Status)
	if in.Arch != "" {
		fmt.Fprintf(tw, "Arch:\t%s\n", in.Arch)
	}
	if in.VMType != "" {
		fmt.Fprintf(tw, "Type:\t%s\n", in.VMType)
	}
	if in.CPUs > 0 {
		fmt.Fprintf(tw, "CPUs:\t%d\n", in.CPUs)
	}
	if in.Memory > 0 {
		fmt.Fprintf(tw, "Memory:\t%s\n", HumanBytes(in.Memory))
	}
	if in.Disk > 0 {
		fmt.Fprintf(tw, "Disk:\t%s\n", HumanBytes(in.Disk))
	}
	if in.Dir != "" {
		fmt.Fprintf(tw, "Dir:\t%s\n", in.Dir)
	}
	if repo := in.Param["PinacleRepo"]; repo != "" {
		fmt.Fprintf(tw, "Repository:\t%s\n", repo)
	}
	if in.Message != "" {
		fmt.Fprintf(tw, "Message:\t%s\n", in.Message)
	}
	return tw.Flush()
}

// HumanBytes formats n in binary units (KiB, MiB, GiB).
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
