// Package leakcheck snapshots the host resources the node creates (mounts,
// links, addresses, routes, netns, iptables rules, tc qdiscs, cgroups at
// any depth, loop devices, processes, files under data roots) so tests can
// prove that everything they made was cleaned up.
package leakcheck

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Snapshot is a set of resource descriptions, grouped by kind. The kind
// "error" is reserved: it holds the sources that could not be read, so a
// broken `iptables-save` never passes as "no rules leaked".
type Snapshot map[string][]string

const errKind = "error"

// Err reports the sources that could not be read when s was taken.
func (s Snapshot) Err() error {
	if len(s[errKind]) == 0 {
		return nil
	}
	return fmt.Errorf("leakcheck: cannot read:\n  %s", strings.Join(s[errKind], "\n  "))
}

// Probe says what to record.
type Probe struct {
	// Filter keeps only resources whose description contains one of these
	// substrings (empty: keep all), so unrelated activity on a shared
	// machine does not show up.
	Filter []string
	// Procs lists substrings of process command lines to record (runsc
	// sandboxes and gofers, forwarders, daemons); empty records none.
	// Separate from Filter because a command line names more than a
	// resource does.
	Procs []string
	// Roots are directories whose files (and directories) are recorded,
	// by path, at any depth. A root that does not exist is empty.
	Roots []string
}

// Take records the current resources. Sources that fail are recorded
// under the "error" kind (see Snapshot.Err).
func (p Probe) Take(ctx context.Context) Snapshot {
	s := Snapshot{}
	add := func(kind, line string) {
		if line = strings.TrimSpace(line); line != "" && p.keep(line) {
			s[kind] = append(s[kind], line)
		}
	}
	for _, src := range sources {
		if err := src.read(ctx, add); err != nil {
			s[errKind] = append(s[errKind], src.name+": "+err.Error())
		}
	}
	if len(p.Procs) > 0 {
		if err := readProcs(p.Procs, func(l string) { s["process"] = append(s["process"], l) }); err != nil {
			s[errKind] = append(s[errKind], "processes: "+err.Error())
		}
	}
	for _, root := range p.Roots {
		if err := readFiles(root, func(l string) { s["file"] = append(s["file"], l) }); err != nil {
			s[errKind] = append(s[errKind], "files under "+root+": "+err.Error())
		}
	}
	for k := range s {
		sort.Strings(s[k])
	}
	return s
}

func (p Probe) keep(line string) bool {
	if len(p.Filter) == 0 {
		return true
	}
	for _, f := range p.Filter {
		if strings.Contains(line, f) {
			return true
		}
	}
	return false
}

// Check polls until nothing new remains compared to before, or the
// timeout passes, and then returns the leftovers as an error. A source
// that cannot be read, before or now, is an error at once: a check that
// cannot look must not pass.
func (p Probe) Check(ctx context.Context, before Snapshot, timeout time.Duration) error {
	if err := before.Err(); err != nil {
		return fmt.Errorf("the snapshot before: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		now := p.Take(ctx)
		if err := now.Err(); err != nil {
			return err
		}
		d := Diff(before, now)
		if len(d) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("leaked resources:\n  %s", strings.Join(d, "\n  "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Take records the current resources that contain one of filter (see
// Probe.Filter); no processes, no files.
func Take(ctx context.Context, filter ...string) Snapshot {
	return Probe{Filter: filter}.Take(ctx)
}

// Check is Probe{Filter: filter}.Check.
func Check(ctx context.Context, before Snapshot, timeout time.Duration, filter ...string) error {
	return Probe{Filter: filter}.Check(ctx, before, timeout)
}

// Diff returns what is in after but not in before, one line per resource.
func Diff(before, after Snapshot) []string {
	var out []string
	for kind, items := range after {
		had := map[string]int{}
		for _, i := range before[kind] {
			had[i]++
		}
		for _, i := range items {
			if had[i] > 0 {
				had[i]--
				continue
			}
			out = append(out, kind+": "+i)
		}
	}
	sort.Strings(out)
	return out
}
