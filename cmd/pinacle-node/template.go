package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/podspec"
	"github.com/pinacle/pinacle-node/templates"
)

// newTemplateCmd is `pinacle-node template ls|show|detect|tiers`.
func newTemplateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "template",
		Short: "List, show and detect pod templates; snapshot them on the daemon",
	}
	addTemplatesDirFlag(cmd.PersistentFlags())
	cmd.AddCommand(newTemplateLsCmd(), newTemplateShowCmd(), newTemplateDetectCmd(), newTemplateTiersCmd(), newTemplateSnapshotCmd())
	return cmd
}

type flagSet interface {
	String(name, value, usage string) *string
}

func addTemplatesDirFlag(fs flagSet) {
	fs.String("templates-dir", envOr("PINACLE_TEMPLATES_DIR", templates.DefaultDir),
		"directory of user templates that override built-ins by name (env PINACLE_TEMPLATES_DIR)")
}

// loadTemplates loads the registry and prints a broken user template's
// warning to stderr; the others still load.
func loadTemplates(cmd *cobra.Command) (*templates.Registry, error) {
	dir, _ := cmd.Flags().GetString("templates-dir")
	var opts []templates.Option
	if dir != "" {
		opts = append(opts, templates.WithDir(dir))
	}
	r, warns, err := templates.Load(cmd.Context(), opts...)
	for _, w := range warns {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: template skipped: %v\n", w)
	}
	return r, err
}

// templateRow is one line of `template ls`.
type templateRow struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Image       string   `json:"image"`
	Tier        string   `json:"tier"`
	Ports       []string `json:"ports"`
	Services    []string `json:"services"`
	Extends     string   `json:"extends,omitempty"`
	Source      string   `json:"source"`
}

func newTemplateLsCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List templates",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := loadTemplates(cmd)
			if err != nil {
				return err
			}
			rows := []templateRow{}
			for _, n := range r.Names() {
				t, err := r.ResolveTemplate(n)
				if err != nil {
					return err // Load dropped broken templates; this is a bug
				}
				row := templateRow{Name: t.Name, Description: t.Description, Image: t.Spec.BaseImage,
					Tier: t.Spec.Resources.Tier, Extends: t.Extends, Source: string(t.Source), Ports: []string{}, Services: []string{}}
				for _, p := range t.Spec.Network.Ports {
					row.Ports = append(row.Ports, fmt.Sprintf("%s:%d", p.Name, p.Internal))
				}
				for _, s := range t.Spec.Services {
					row.Services = append(row.Services, s.Name)
				}
				rows = append(rows, row)
			}
			return cli.Print(cmd, rows, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tDESCRIPTION\tIMAGE\tTIER\tPORTS\tSOURCE")
				for _, r := range rows {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Description, r.Image, r.Tier, strings.Join(r.Ports, ","), r.Source)
				}
			})
		},
	}
}

func newTemplateShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a template resolved: what it extends, its services and defaults filled in",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := loadTemplates(cmd)
			if err != nil {
				return err
			}
			if _, err := r.Get(args[0]); err != nil {
				return err
			}
			t, err := r.ResolveTemplate(args[0])
			if err != nil {
				return err
			}
			return cli.Print(cmd, t, func(w io.Writer) { printSpecTable(w, t.Name, t.Description, string(t.Source), &t.Spec) })
		},
	}
}

// printSpecTable is the human summary of a (resolved) spec.
func printSpecTable(w io.Writer, name, desc, source string, p *podspec.Pod) {
	kv := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%s:\t%s\n", k, v)
		}
	}
	kv("Name", name)
	kv("Description", desc)
	kv("Source", source)
	kv("Template", p.Template)
	kv("Image", p.BaseImage)
	r := p.Resources
	kv("Resources", fmt.Sprintf("%s (%g vCPU, %d MB memory, %d MB storage)", r.Tier, r.CPUCores, r.MemoryMB, r.StorageMB))
	kv("Working dir", p.WorkingDir)
	var ports []string
	for _, pt := range p.Network.Ports {
		s := fmt.Sprintf("%s %d/%s", pt.Name, pt.Internal, pt.Protocol)
		if pt.External != 0 {
			s += fmt.Sprintf(" -> host %d", pt.External)
		}
		ports = append(ports, s)
	}
	kv("Ports", strings.Join(ports, ", "))
	var env []string
	for _, k := range slices.Sorted(maps.Keys(p.Environment)) {
		env = append(env, k+"="+p.Environment[k])
	}
	kv("Environment", strings.Join(env, " "))
	for _, s := range p.Services {
		port := ""
		if s.Port != 0 {
			port = fmt.Sprintf(" :%d", s.Port)
		}
		kv("Service "+s.Name, strings.Join(s.Command, " ")+port)
	}
}

func newTemplateDetectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "detect DIR",
		Short: "Name the template that fits a checkout, and why",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := templates.Detect(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return cli.Print(cmd, d, func(w io.Writer) {
				fmt.Fprintln(w, "TEMPLATE\tREASON")
				fmt.Fprintf(w, "%s\t%s\n", d.Template, d.Reason)
			})
		},
	}
}

func newTemplateTiersCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "tiers",
		Short: "List resource tiers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tiers := podspec.Tiers()
			return cli.Print(cmd, tiers, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tCPU\tMEMORY\tSTORAGE\tPIDS")
				for _, t := range tiers {
					fmt.Fprintf(w, "%s\t%g-%g\t%d MB\t%d MB\t%d\n", t.Name, t.CPUMin, t.CPUMax, t.MemoryMB, t.StorageMB, t.PidsLimit)
				}
			})
		},
	}
}
