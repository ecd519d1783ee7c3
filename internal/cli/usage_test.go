package cli

import (
	"context"
	"testing"

	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func TestOutputFromArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want Format
	}{
		{[]string{"pod", "ls", "--bad", "-o", "json"}, JSON},
		{[]string{"pod", "ls", "-ojson"}, JSON},
		{[]string{"pod", "ls", "--output=json"}, JSON},
		{[]string{"pod", "ls", "--output", "yaml"}, YAML},
		{[]string{"pod", "ls"}, Table},
		{[]string{"pod", "exec", "x", "--", "sh", "-o", "json"}, Table},
	} {
		if got := outputFromArgs(tc.args); got != tc.want {
			t.Errorf("outputFromArgs(%q) = %s, want %s", tc.args, got, tc.want)
		}
	}
}

// TestStrictKeepsHooks: Strict's required-flag check runs before the
// command's own PreRun/PreRunE, which still run.
func TestStrictKeepsHooks(t *testing.T) {
	var ran []string
	root := &cobra.Command{Use: "x", SilenceErrors: true, SilenceUsage: true}
	a := &cobra.Command{Use: "a", Args: cobra.NoArgs,
		PreRun: func(*cobra.Command, []string) { ran = append(ran, "pre") },
		RunE:   func(*cobra.Command, []string) error { ran = append(ran, "run"); return nil }}
	a.Flags().String("f", "", "")
	_ = a.MarkFlagRequired("f")
	root.AddCommand(a)
	Strict(root)

	root.SetArgs([]string{"a"})
	if _, err := root.ExecuteContextC(context.Background()); errdefs.Classify(err).ExitCode != errdefs.ExitUsage || len(ran) != 0 {
		t.Errorf("missing required flag: err %v, ran %v; want a usage error before any hook", err, ran)
	}
	root.SetArgs([]string{"a", "--f", "v"})
	if _, err := root.ExecuteContextC(context.Background()); err != nil || len(ran) != 2 {
		t.Errorf("a --f v: err %v, ran %v; want pre and run", err, ran)
	}
}
