package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// TestUsageErrors: a mistyped command, a missing subcommand or argument, an
// unknown flag: each is a usage error (exit 2) that says what was wrong
// and, when a name is close, what was meant; never help with exit 0.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string // substrings of the message
		hint string   // the help command named
	}{
		{[]string{"pod", "frobnicate", "x"}, []string{`unknown command "frobnicate" for "pod"`, "want one of create, delete"}, "pinacle-node pod --help"},
		{[]string{"pod", "hibernat", "x"}, []string{`unknown command "hibernat" for "pod"; did you mean "hibernate"?`}, "pinacle-node pod --help"},
		{[]string{"pod", "gett", "web"}, []string{`unknown command "gett" for "pod"; did you mean "get"?`}, "pinacle-node pod --help"},
		{[]string{"podd", "ls"}, []string{`unknown command "podd" for "pinacle-node"; did you mean "pod"?`}, "pinacle-node --help"},
		{[]string{"image", "lss"}, []string{`did you mean "ls"?`}, "pinacle-node image --help"},
		{[]string{"pod", "service", "restrat", "web", "app"}, []string{`unknown command "restrat" for "pod service"; did you mean "restart"?`}, "pinacle-node pod service --help"},
		{[]string{"template", "shwo", "nextjs"}, []string{`did you mean "show"?`}, "pinacle-node template --help"},
		{[]string{"pod"}, []string{"pod: missing command: want one of create,"}, "pinacle-node pod --help"},
		{[]string{"pod", "service"}, []string{"pod service: missing command: want one of ls, restart, start, stop"}, "pinacle-node pod service --help"},
		{nil, []string{"pinacle-node: missing command: want one of"}, "pinacle-node --help"},
		{[]string{"pod", "get"}, []string{"pod get: accepts 1 arg(s), received 0", "usage: pod get ID"}, "pinacle-node pod get --help"},
		{[]string{"pod", "get", "a", "b"}, []string{"pod get: accepts 1 arg(s), received 2"}, "pinacle-node pod get --help"},
		{[]string{"pod", "service", "restart", "web"}, []string{"pod service restart: accepts 2 arg(s), received 1"}, "pinacle-node pod service restart --help"},
		{[]string{"pod", "exec", "web"}, []string{"pod exec: requires at least 2 arg(s)"}, "pinacle-node pod exec --help"},
		{[]string{"image", "pull"}, []string{"image pull: accepts 1 arg(s), received 0"}, "pinacle-node image pull --help"},
		{[]string{"run"}, []string{"run: requires at least 1 arg(s)"}, "pinacle-node run --help"},
		{[]string{"serve", "now"}, []string{`serve takes no arguments, got ["now"]`}, "pinacle-node serve --help"},
		{[]string{"pod", "validate"}, []string{`pod validate: required flag(s) "file" not set`}, "pinacle-node pod validate --help"},
		{[]string{"pod", "ls", "--sockt", "/x"}, []string{"pod ls: unknown flag: --sockt; did you mean \"--socket\"?"}, "pinacle-node pod ls --help"},
		{[]string{"pod", "ls", "--nosuchflag"}, []string{"pod ls: unknown flag: --nosuchflag"}, "pinacle-node pod ls --help"},
		{[]string{"help", "pod", "gett"}, []string{`unknown command "gett" for "pod"; did you mean "get"?`}, "pinacle-node pod --help"},
		{[]string{"help", "podd"}, []string{`unknown command "podd" for "pinacle-node"; did you mean "pod"?`}, "pinacle-node --help"},
		{[]string{"pod", "wake"}, []string{"pod wake: accepts 1 arg(s), received 0"}, "pinacle-node pod wake --help"},
		{[]string{"pod", "wake", "--all", "web"}, []string{`pod wake takes no arguments, got ["web"]`}, "pinacle-node pod wake --help"},
		{[]string{"drain"}, []string{`drain: required flag(s) "hibernate" not set`}, "pinacle-node drain --help"},
		{[]string{"pod", "logs", "web", "--tail"}, []string{"pod logs: flag needs an argument: --tail"}, "pinacle-node pod logs --help"},
	} {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			root := newRootCmd()
			var out, errOut bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&errOut)
			root.SetArgs(tc.args)
			_, err := root.ExecuteContextC(context.Background())
			if err == nil {
				t.Fatalf("pinacle-node %v succeeded; stdout:\n%s", tc.args, out.String())
			}
			if c := errdefs.Classify(err); c.ExitCode != errdefs.ExitUsage || c.Code != "usage" {
				t.Errorf("pinacle-node %v: class %+v (%v), want usage, exit %d", tc.args, c, err, errdefs.ExitUsage)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("pinacle-node %v: message %q lacks %q", tc.args, err, w)
				}
			}
			if h, want := cli.UsageHint(err), "Run '"+tc.hint+"' for usage."; h != want {
				t.Errorf("pinacle-node %v: hint %q, want %q", tc.args, h, want)
			}
			if out.Len() > 0 {
				t.Errorf("pinacle-node %v printed on stdout (help?):\n%s", tc.args, out.String())
			}
		})
	}
}

// TestHelpStillSucceeds: asking for help is not an error.
func TestHelpStillSucceeds(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"pod", "--help"}, {"pod", "get", "--help"}, {"help", "pod"}, {"help", "pod", "get"}, {"help"}, {"pod", "service", "-h"}} {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(args)
		if _, err := root.ExecuteContextC(context.Background()); err != nil {
			t.Errorf("pinacle-node %v: %v", args, err)
		}
		if !strings.Contains(out.String(), "Usage:") {
			t.Errorf("pinacle-node %v: no help:\n%s", args, out.String())
		}
		if args[0] == "pod" && len(args) == 2 && strings.Contains(out.String(), "pinacle-node pod [flags]") {
			t.Errorf("pinacle-node pod --help shows the group as a command of its own:\n%s", out.String())
		}
	}
}
