package render

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/pinacle/pinacle-node/internal/api"
)

// Events are printed in fixed-width columns rather than through a
// tabwriter: a followed stream prints each event as it arrives, and a
// tabwriter holds everything back until it is flushed.
const eventFormat = "%-6s  %-20s  %-12s  %-8s  %-28s  %s\n"

// EventHeader writes the header of an event table:
// SEQ TIME POD TYPE CHANGE REASON.
func EventHeader(w io.Writer) error {
	_, err := fmt.Fprintf(w, eventFormat, "SEQ", "TIME", "POD", "TYPE", "CHANGE", "REASON")
	return err
}

// Event writes one event as a row of the event table.
func Event(w io.Writer, ev api.Event) error {
	change := ""
	if ev.From != "" || ev.To != "" {
		change = fmt.Sprintf("%s -> %s", Dash(string(ev.From)), ev.To)
	}
	reason := ev.Reason
	if ev.Message != "" {
		if reason != "" {
			reason += ": "
		}
		reason += ev.Message
	}
	_, err := fmt.Fprintf(w, eventFormat, strconv.FormatUint(ev.Seq, 10),
		ev.Time.Local().Format(time.DateTime), Dash(ev.PodID), ev.Type, Dash(change), reason)
	return err
}
