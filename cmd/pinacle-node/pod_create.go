package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/podspec"
)

func newPodCreateCmd() *cobra.Command {
	var (
		file, template, name, image string
		sets                        []string
		wait                        bool
	)
	cmd := &cobra.Command{
		Use:   "create (-f FILE | --template NAME) [--name N] [--image REF] [--set path=value]...",
		Short: "Create a pod from a spec file or a template",
		Long: `Create a pod. The spec (YAML or JSON, strict: unknown fields are errors)
is merged onto its template by the node; --name and --image set spec.name
and spec.baseImage, and --set overrides apply last (see pod validate).

With --wait (the default) the command returns once the pod is running,
or fails with the reason it could not be provisioned. On a terminal it
prints each state change on stderr as it happens. The pod is printed
with its ports as URLs (http://127.0.0.1:HOSTPORT unless --url-host).`,
		Example: `  pinacle-node pod create --template nextjs --name web
  pinacle-node pod create -f pod.yaml --set resources.tier=dev.large -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" && template == "" {
				return fmt.Errorf("pod create: want -f FILE or --template NAME: %w", errdefs.ErrInvalidArgument)
			}
			spec := &podspec.Pod{}
			if file != "" {
				data, err := readSpecFile(cmd, file)
				if err != nil {
					return err
				}
				if spec, err = podspec.Decode(data); err != nil {
					return fmt.Errorf("%s: %w", file, err)
				}
			}
			if name != "" {
				spec.Name = name
			}
			if image != "" {
				spec.BaseImage = image
			}
			req := api.CreateRequest{Spec: *spec, Template: template, Sets: sets, Wait: wait}
			c := newClient(cmd)
			if wait && showProgress(cmd) {
				return createWithProgress(cmd, c, req)
			}
			p, err := c.Create(cmd.Context(), req)
			if err != nil {
				return err
			}
			return printPod(cmd, p)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "pod spec file, YAML or JSON (- for stdin)")
	cmd.Flags().StringVar(&template, "template", "", "template to create from (overrides the spec's template)")
	cmd.Flags().StringVar(&name, "name", "", "pod name (spec.name)")
	cmd.Flags().StringVar(&image, "image", "", "base image reference (spec.baseImage)")
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a field: path=value, e.g. resources.tier=dev.large (repeatable)")
	cmd.Flags().BoolVar(&wait, "wait", true, "wait until the pod is running (or failed)")
	return cmd
}

// showProgress is true for a person watching: table output, stderr a terminal.
func showProgress(cmd *cobra.Command) bool {
	if f, _ := cli.OutputFormat(cmd); f != cli.Table {
		return false
	}
	errw, ok := cmd.ErrOrStderr().(*os.File)
	return ok && term.IsTerminal(int(errw.Fd()))
}

// createWithProgress creates without waiting, then follows the pod's
// events and prints each state change until it is running or failed.
func createWithProgress(cmd *cobra.Command, c *api.Client, req api.CreateRequest) error {
	ctx := cmd.Context()
	req.Wait = false
	start := time.Now()
	p, err := c.Create(ctx, req)
	if err != nil {
		return err
	}
	errw := cmd.ErrOrStderr()
	fmt.Fprintf(errw, "pod %s: %s\n", podRef(p), p.State)
	final, err := followUntilSettled(ctx, c, p.ID, func(ev api.Event) {
		line := fmt.Sprintf("pod %s: %s -> %s (%.1fs)", p.ID, ev.From, ev.To, time.Since(start).Seconds())
		if ev.Reason != "" {
			line += ": " + ev.Reason
		}
		fmt.Fprintln(errw, line)
	})
	if err != nil {
		return err
	}
	p, err = c.Get(ctx, p.ID)
	if err != nil {
		return err
	}
	if err := printPod(cmd, p); err != nil {
		return err
	}
	if final == lifecycle.Failed {
		// The class of the failure stays on the node; `-o json` (which
		// waits on the node) returns it. Here the reason is what we have.
		return fmt.Errorf("pod %s failed: %s", p.ID, p.Reason)
	}
	return nil
}

var errSettled = errors.New("settled")

// followUntilSettled follows a pod's state events until it is running,
// failed or gone, and returns that state.
func followUntilSettled(ctx context.Context, c *api.Client, id string, onChange func(api.Event)) (lifecycle.State, error) {
	var final lifecycle.State
	err := c.Events(ctx, id, 0, true, func(ev api.Event) error {
		switch ev.Type {
		case api.EventDeleted:
			final = lifecycle.Terminated
			return errSettled
		case api.EventState:
		default:
			return nil
		}
		if ev.From != "" { // the first event is the record itself
			onChange(ev)
		}
		switch ev.To {
		case lifecycle.Running, lifecycle.Failed, lifecycle.Terminating, lifecycle.Terminated, lifecycle.Stopped:
			final = ev.To
			return errSettled
		}
		return nil
	})
	if errors.Is(err, errSettled) {
		return final, nil
	}
	if errors.Is(err, store.ErrEventsPruned) || errdefs.IsNotFound(err) {
		// Fell behind the bounded log or the pod vanished: ask for the state.
		p, gerr := c.Get(ctx, id)
		if gerr != nil {
			return "", gerr
		}
		return p.State, nil
	}
	return "", err
}
