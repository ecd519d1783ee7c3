package cli

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// UsageError is a command line the command tree cannot run: an unknown
// command or flag, a missing subcommand or argument. Its class is
// errdefs.ErrUsage (exit code 2).
type UsageError struct {
	// Msg says what is wrong and, when there is one, what was meant. It
	// names commands without the binary ("pod get"), so a host CLI that
	// forwards a node command can show it as its own.
	Msg string
	// Help is the command line that shows the right usage
	// ("pinacle-node pod get --help").
	Help string
}

func (e *UsageError) Error() string { return e.Msg }

// Unwrap gives the error its class.
func (e *UsageError) Unwrap() error { return errdefs.ErrUsage }

// UsageHint returns "Run 'CMD --help' for usage." for a usage error, or "".
func UsageHint(err error) string {
	var ue *UsageError
	if errors.As(err, &ue) && ue.Help != "" {
		return fmt.Sprintf("Run '%s' for usage.", ue.Help)
	}
	return ""
}

// Strict makes root's command tree reject what cobra lets through by
// default, each as a *UsageError:
//   - an unknown command or subcommand (cobra runs a group without a Run
//     as a request for help and exits 0; it checks names only at the
//     root), with a suggestion when one is close ("did you mean ...");
//   - a group named without its subcommand;
//   - positional arguments that the command's Args rejects (too few, too
//     many), an unknown or malformed flag, a missing required flag.
//
// Call it once, after the whole tree is built. --help and -h still print
// help and succeed.
func Strict(root *cobra.Command) {
	root.SetFlagErrorFunc(flagError)
	// cobra's help command shows the root's help for a topic it does not
	// know (exit 0); this one says which name is wrong.
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil {
				return &UsageError{Msg: err.Error(), Help: help(c.Root())}
			}
			if len(rest) > 0 {
				return unknownCommand(cmd, rest)
			}
			return cmd.Help()
		},
	})
	// cobra adds these when it executes; add them now so they are checked too.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	// The groups become runnable (to reject what follows them); their help
	// keeps showing only "CMD [command]", as for a group.
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(), "{{if .Runnable}}", `{{if and .Runnable (ne (index .Annotations "`+annotationGroup+`") "true")}}`, 1))
	walk(root, func(c *cobra.Command) {
		if c.SuggestionsMinimumDistance <= 0 {
			c.SuggestionsMinimumDistance = 2 // cobra's default, which SuggestionsFor does not apply
		}
		if c.HasSubCommands() && !c.Runnable() {
			if c.Annotations == nil {
				c.Annotations = map[string]string{}
			}
			c.Annotations[annotationGroup] = "true"
			c.Args = cobra.ArbitraryArgs
			c.RunE = func(cmd *cobra.Command, args []string) error {
				return unknownCommand(cmd, args)
			}
			return
		}
		if c.Args != nil {
			args := c.Args
			c.Args = func(cmd *cobra.Command, a []string) error {
				err := args(cmd, a)
				if err == nil {
					return nil
				}
				if cmd.HasSubCommands() && len(a) > 0 {
					return unknownCommand(cmd, a)
				}
				if len(a) > 0 && args(cmd, nil) == nil && args(cmd, a[:1]) != nil {
					return &UsageError{Msg: fmt.Sprintf("%s takes no arguments, got %q (usage: %s)", path(cmd), a, usageLine(cmd)), Help: help(cmd)}
				}
				return &UsageError{Msg: fmt.Sprintf("%s: %v (usage: %s)", path(cmd), err, usageLine(cmd)), Help: help(cmd)}
			}
		}
		if c.Runnable() {
			// cobra checks required flags after PreRunE, with a plain
			// error: check them first, as usage errors.
			preE, pre := c.PreRunE, c.PreRun
			c.PreRun = nil
			c.PreRunE = func(cmd *cobra.Command, a []string) error {
				for _, check := range []func() error{cmd.ValidateRequiredFlags, cmd.ValidateFlagGroups} {
					if err := check(); err != nil {
						return &UsageError{Msg: fmt.Sprintf("%s: %v", path(cmd), err), Help: help(cmd)}
					}
				}
				if preE != nil {
					return preE(cmd, a)
				}
				if pre != nil {
					pre(cmd, a)
				}
				return nil
			}
		}
	})
}

const annotationGroup = "pinacle.group"

func walk(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, s := range c.Commands() {
		walk(s, f)
	}
}

// unknownCommand is the error for a group run with args[0] as an unknown
// subcommand, or with none.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return &UsageError{
			Msg:  fmt.Sprintf("%s: missing command: want one of %s", path(cmd), strings.Join(subcommands(cmd), ", ")),
			Help: help(cmd),
		}
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], path(cmd))
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + quoteAll(s) + "?"
	} else {
		msg += "; want one of " + strings.Join(subcommands(cmd), ", ")
	}
	return &UsageError{Msg: msg, Help: help(cmd)}
}

// flagError turns a flag parsing error into a usage error, with a
// suggestion for an unknown long flag close to a known one.
func flagError(cmd *cobra.Command, err error) error {
	msg := fmt.Sprintf("%s: %v", path(cmd), err)
	var ne *pflag.NotExistError
	if errors.As(err, &ne) && ne.GetSpecifiedShortnames() == "" {
		if s := suggestFlags(cmd, ne.GetSpecifiedName()); len(s) > 0 {
			msg += "; did you mean " + quoteAll(s) + "?"
		}
	}
	return &UsageError{Msg: msg, Help: help(cmd)}
}

func suggestFlags(cmd *cobra.Command, typed string) []string {
	var out []string
	seen := map[string]bool{}
	visit := func(f *pflag.Flag) {
		if f.Hidden || seen[f.Name] {
			return
		}
		seen[f.Name] = true
		if levenshtein(typed, f.Name) <= 2 || (len(typed) > 1 && strings.HasPrefix(f.Name, typed)) {
			out = append(out, "--"+f.Name)
		}
	}
	cmd.Flags().VisitAll(visit)
	cmd.InheritedFlags().VisitAll(visit)
	sort.Strings(out)
	return out
}

// path is the command's path without the binary's name ("pod get"), or
// the binary's name for the root.
func path(cmd *cobra.Command) string {
	if !cmd.HasParent() {
		return cmd.Name()
	}
	p := cmd.CommandPath()
	return p[strings.IndexByte(p, ' ')+1:]
}

func help(cmd *cobra.Command) string { return cmd.CommandPath() + " --help" }

// usageLine is the command's use line without the binary's name.
func usageLine(cmd *cobra.Command) string {
	u := cmd.UseLine()
	if i := strings.IndexByte(u, ' '); i >= 0 && cmd.HasParent() {
		return u[i+1:]
	}
	return u
}

func subcommands(cmd *cobra.Command) []string {
	var names []string
	for _, s := range cmd.Commands() {
		if s.IsAvailableCommand() {
			names = append(names, s.Name())
		}
	}
	return names
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, " or ")
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
