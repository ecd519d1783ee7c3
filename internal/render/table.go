package render

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"text/tabwriter"
	"time"
)

// NewTable returns the tabwriter both CLIs align tables with (the same
// settings as internal/cli's table output). Callers Flush it.
func NewTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// DefaultURLHost is the host of port URLs the node did not give: the Lima
// VM forwards 30000-40000 to the Mac's loopback, so on either side
// http://127.0.0.1:PORT reaches the pod.
const DefaultURLHost = "127.0.0.1"

// URL is http://host:port.
func URL(host string, port int) string {
	return "http://" + net.JoinHostPort(host, strconv.Itoa(port))
}

// Bytes formats n in binary units: 512 B, 1.5 KiB, 2.0 GiB.
func Bytes(n int64) string {
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

// Age is a compact age for tables, as of now: 45s, 12m, 5h, 3d ("-" for
// the zero time).
func Age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(0, int(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// Dash stands in for an empty cell.
func Dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
