package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Format is an output format chosen with -o.
type Format string

const (
	Table Format = "table"
	JSON  Format = "json"
	YAML  Format = "yaml"
)

// AddOutputFlag registers -o/--output on cmd (persistent, so subcommands inherit it).
func AddOutputFlag(cmd *cobra.Command) {
	cmd.PersistentFlags().StringP("output", "o", string(Table), "output format: table, json or yaml")
}

// OutputFormat reads and validates the -o flag of cmd.
func OutputFormat(cmd *cobra.Command) (Format, error) {
	f, err := cmd.Flags().GetString("output")
	if err != nil {
		return Table, nil
	}
	switch Format(f) {
	case Table, JSON, YAML:
		return Format(f), nil
	case "wide", "":
		return Table, nil
	}
	return Table, fmt.Errorf("--output %q: want table, json or yaml: %w", f, errdefs.ErrInvalidArgument)
}

// Print writes v in the format chosen on cmd; table calls tbl with a tabwriter.
func Print(cmd *cobra.Command, v any, tbl func(w io.Writer)) error {
	f, err := OutputFormat(cmd)
	if err != nil {
		return err
	}
	// One write at the end: tabwriter and the JSON encoder otherwise write
	// to the unbuffered stdout cell by cell (a syscall each; 100 pods in
	// a table cost ~2 ms of them).
	out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
	switch f {
	case JSON:
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return err
		}
	case YAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		if _, err := out.Write(b); err != nil {
			return err
		}
	default:
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		tbl(tw)
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return out.Flush()
}

// ErrorBody is the JSON shape of an error, shared by the API and the CLI.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// ExitError carries an exit code that a command wants to pass through as
// is (for example the exit status of a process run in a sandbox).
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// HandleError prints err the way the chosen format wants (JSON on stderr
// under -o json) and returns the process exit code.
func HandleError(cmd *cobra.Command, err error) int {
	if err == nil {
		return errdefs.ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	c := errdefs.Classify(err)
	f := Table
	if cmd != nil {
		f, _ = OutputFormat(cmd)
	}
	var ue *UsageError
	if errors.As(err, &ue) && f != JSON {
		// A flag error stops parsing, so -o may not have been read.
		f = outputFromArgs(os.Args[1:])
	}
	if f == JSON {
		b, _ := json.Marshal(ErrorBody{Code: c.Code, Message: err.Error()})
		fmt.Fprintln(os.Stderr, string(b))
	} else {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		if h := UsageHint(err); h != "" {
			fmt.Fprintln(os.Stderr, h)
		}
	}
	return c.ExitCode
}

// outputFromArgs finds -o/--output in a command line that did not parse,
// so that even a usage error prints as JSON when JSON was asked for.
func outputFromArgs(args []string) Format {
	f := Table
	for i, a := range args {
		if a == "--" {
			break
		}
		var v string
		switch {
		case (a == "-o" || a == "--output") && i+1 < len(args):
			v = args[i+1]
		case strings.HasPrefix(a, "--output="):
			v = strings.TrimPrefix(a, "--output=")
		case strings.HasPrefix(a, "-o") && !strings.HasPrefix(a, "--"):
			v = strings.TrimPrefix(a[2:], "=")
		default:
			continue
		}
		if Format(v) == JSON || Format(v) == YAML {
			f = Format(v)
		}
	}
	return f
}
