// Package iptables runs the iptables-save and iptables-restore binaries:
// dumps to read, and changes applied atomically, one exec per change.
package iptables

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// Save returns iptables-save's dump; args select tables ("-t", "nat") or
// add counters ("-c").
func Save(ctx context.Context, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "iptables-save", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("iptables-save %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// tableOrder is the order iptables-restore input lists tables in.
var tableOrder = []string{"raw", "mangle", "nat", "filter"}

// Restore applies lines to their tables in one iptables-restore --noflush
// call: all of it or none, and nothing else is flushed (declaring a chain,
// ":NAME - [0:0]", creates it or flushes that chain only). It waits up to
// 5 s for the xtables lock. Each exec is a process start and a table
// dump, so callers batch a whole change into one call rather than one
// call per rule.
func Restore(ctx context.Context, tables map[string][]string) error {
	for t, lines := range tables {
		if len(lines) > 0 && !slices.Contains(tableOrder, t) {
			return fmt.Errorf("iptables-restore: unknown table %q", t)
		}
	}
	var in strings.Builder
	for _, t := range tableOrder {
		if len(tables[t]) > 0 {
			in.WriteString("*" + t + "\n" + strings.Join(tables[t], "\n") + "\nCOMMIT\n")
		}
	}
	if in.Len() == 0 {
		return nil
	}
	var errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "iptables-restore", "-w", "5", "--noflush")
	cmd.Stdin, cmd.Stderr = strings.NewReader(in.String()), &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("iptables-restore: %w: %s\ninput:\n%s", err, strings.TrimSpace(errb.String()), in.String())
	}
	return nil
}
