package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/podspec"
)

// newPodValidateCmd is `pinacle-node pod validate -f FILE`: resolve and
// validate a spec without a node.
func newPodValidateCmd() *cobra.Command {
	var (
		file, template string
		sets           []string
	)
	cmd := &cobra.Command{
		Use:   "validate -f FILE",
		Short: "Resolve a pod spec against its template and validate it, without a node",
		Long: `Resolve a pod spec (YAML or JSON) against its template and validate it.
Prints the resolved spec, or every error with its field path (exit code 5).
With -o json or -o yaml, errors are also printed to stdout as {"errors": [{"field", "message"}]}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := readSpecFile(cmd, file)
			if err != nil {
				return err
			}
			r, err := loadTemplates(cmd)
			if err != nil {
				return err
			}
			// Exactly as pod create resolves it on the node.
			p, err := r.ResolveDocument(data, template, sets)
			if err != nil {
				var ve *podspec.ValidationError
				if f, _ := cli.OutputFormat(cmd); f != cli.Table && errors.As(err, &ve) {
					if perr := cli.Print(cmd, ve, nil); perr != nil {
						return perr
					}
				}
				return fmt.Errorf("%s: %w", file, err)
			}
			return cli.Print(cmd, p, func(w io.Writer) { printSpecTable(w, p.Name, "", "", p) })
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "pod spec file, YAML or JSON (- for stdin)")
	cmd.Flags().StringVar(&template, "template", "", "template to resolve against (overrides the spec's template)")
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a field: path=value, e.g. resources.tier=dev.large, environment.FOO=bar, network.ports[name=app].internal=3001 (repeatable)")
	addTemplatesDirFlag(cmd.Flags())
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

// readSpecFile reads a spec from a file, or stdin for "-".
func readSpecFile(cmd *cobra.Command, file string) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4<<20))
	}
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("spec file %s: %w", file, errdefs.ErrNotFound)
	}
	return data, err
}
