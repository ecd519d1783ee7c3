package hostcli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/pinacle/pinacle-node/internal/api"
	// Named tables here: the package's tests have a helper called render.
	tables "github.com/pinacle/pinacle-node/internal/render"
)

// The host CLI decodes the node's JSON (pinacle-node ... -o json) into the
// API's types and prints it with internal/render, as the node's own CLI
// does, so both show the same tables. Unknown fields are ignored, so a
// newer node works with an older host CLI. Images and templates are not
// API objects: their small views live here.

// Image is the host's view of an image (pinacle-node image ls -o json).
type Image struct {
	Refs    []string  `json:"refs"`
	ID      string    `json:"id"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
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

// RenderPods prints a pod list (render.Pods).
func RenderPods(w io.Writer, data []byte) error {
	var ps []*api.Pod
	if err := json.Unmarshal(data, &ps); err != nil {
		return fmt.Errorf("decoding the node's pod list: %w", err)
	}
	tw := tables.NewTable(w)
	tables.Pods(tw, ps, time.Now())
	return tw.Flush()
}

// RenderPod prints one pod (render.Pod).
func RenderPod(w io.Writer, data []byte) error {
	var p api.Pod
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("decoding the node's pod: %w", err)
	}
	tw := tables.NewTable(w)
	tables.Pod(tw, &p, time.Now())
	return tw.Flush()
}

// RenderURL prints a `pod url` result: the link alone on its line, or
// what --revoke did.
func RenderURL(w io.Writer, data []byte) error {
	var u api.PodURL
	if err := json.Unmarshal(data, &u); err != nil {
		return fmt.Errorf("decoding the node's pod url: %w", err)
	}
	if u.URL == "" {
		return RenderGeneric(w, data)
	}
	_, err := fmt.Fprintf(w, "%s\n", u.URL)
	return err
}

// RenderMetrics prints a pod's metrics (render.Metrics).
func RenderMetrics(w io.Writer, data []byte) error {
	var m api.Metrics
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("decoding the node's pod metrics: %w", err)
	}
	tw := tables.NewTable(w)
	tables.Metrics(tw, &m)
	return tw.Flush()
}

// RenderHealth prints a pod's health (render.Health).
func RenderHealth(w io.Writer, data []byte) error {
	var h api.Health
	if err := json.Unmarshal(data, &h); err != nil {
		return fmt.Errorf("decoding the node's pod health: %w", err)
	}
	tw := tables.NewTable(w)
	tables.Health(tw, &h)
	return tw.Flush()
}

// RenderServices prints a pod's services (render.Services).
func RenderServices(w io.Writer, data []byte) error {
	var st api.ServiceStatus
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("decoding the node's pod services: %w", err)
	}
	tw := tables.NewTable(w)
	tables.Services(tw, &st, time.Now())
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
	tw := tables.NewTable(w)
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
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r, id, tables.Bytes(img.Size))
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
	tw := tables.NewTable(w)
	fmt.Fprintln(tw, "NAME\tDESCRIPTION\tIMAGE\tTIER\tPORTS")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.Description, t.Image, tables.Dash(t.Tier), tables.Dash(strings.Join(t.Ports, ",")))
	}
	return tw.Flush()
}

// RenderEvents prints newline-delimited events as the event table
// (render.Event).
func RenderEvents(w io.Writer, data []byte) error {
	if err := tables.EventHeader(w); err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var ev api.Event
		if err := json.Unmarshal(line, &ev); err != nil {
			return fmt.Errorf("decoding the node's events: %w", err)
		}
		if err := tables.Event(w, ev); err != nil {
			return err
		}
	}
	return sc.Err()
}

// RenderGeneric prints any JSON document as YAML: readable for objects
// that have no table of their own.
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
	tw := tables.NewTable(w)
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
		fmt.Fprintf(tw, "Memory:\t%s\n", tables.Bytes(in.Memory))
	}
	if in.Disk > 0 {
		fmt.Fprintf(tw, "Disk:\t%s\n", tables.Bytes(in.Disk))
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
