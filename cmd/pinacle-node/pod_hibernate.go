package main

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/cli"
)

func newPodHibernateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "hibernate ID",
		Short: "Checkpoint a pod's processes and memory to disk and free its sandbox; a connection to its ports wakes it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := newClient(cmd).Hibernate(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printPod(cmd, p)
		},
	}
}

func newPodWakeCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "wake ID | --all",
		Short: "Restore a hibernated pod (same processes and memory, address and ports)",
		Long: `Restore a hibernated pod from its checkpoint. With --all, wake every
hibernated pod (after a node restart or drain --hibernate); the exit code is
that of the first failure's class.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if all {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c := newClient(cmd)
			if all {
				return forEachPod(cmd, c, "hibernated", "woke", c.Wake)
			}
			p, err := c.Wake(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printPod(cmd, p)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "wake every hibernated pod")
	return cmd
}

// newDrainCmd is `pinacle-node drain --hibernate`: before the machine
// stops (the systemd unit's ExecStop, the host CLI's `pinacle vm stop`),
// every running pod is hibernated, so nobody loses their processes.
func newDrainCmd() *cobra.Command {
	var hibernate bool
	cmd := &cobra.Command{
		Use:   "drain --hibernate",
		Short: "Hibernate every running pod (before the machine stops); each wakes on its first connection or with pod wake --all",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := newClient(cmd)
			return forEachPod(cmd, c, "running", "hibernated", c.Hibernate)
		},
	}
	addClientFlags(cmd)
	// The only mode for now; required so that a plain drain says so.
	cmd.Flags().BoolVar(&hibernate, "hibernate", false, "hibernate every running pod (required)")
	_ = cmd.MarkFlagRequired("hibernate")
	return cmd
}

// podResult is one line of drain's and wake --all's output.
type podResult struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	State string `json:"state,omitempty"`
	Error string `json:"error,omitempty"`
}

// drainParallel is how many pods drain and wake --all handle at once: a
// checkpoint or restore is mostly disk and runsc start-up, and two at a
// time keeps a small machine responsive.
const drainParallel = 2

// forEachPod applies op to every pod in state from, drainParallel at a
// time, and prints one result per pod. Every pod is tried; the error is
// the first failure's.
func forEachPod(cmd *cobra.Command, c *api.Client, from, done string, op func(context.Context, string) (*api.Pod, error)) error {
	ps, err := c.List(cmd.Context())
	if err != nil {
		return err
	}
	var todo []*api.Pod
	for _, p := range ps {
		if string(p.State) == from {
			todo = append(todo, p)
		}
	}
	res := make([]podResult, len(todo))
	errs := make([]error, len(todo))
	sem := make(chan struct{}, drainParallel)
	var wg sync.WaitGroup
	for i, p := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			res[i] = podResult{ID: p.ID, Name: p.Name}
			q, err := op(cmd.Context(), p.ID)
			if err != nil {
				errs[i], res[i].Error = err, err.Error()
				return
			}
			res[i].State = string(q.State)
		}()
	}
	wg.Wait()
	if err := cli.Print(cmd, res, func(w io.Writer) {
		for _, r := range res {
			if r.Error == "" {
				fmt.Fprintf(w, "%s %s\n", done, r.ID)
			} else {
				fmt.Fprintf(w, "%s: %s\n", r.ID, r.Error)
			}
		}
	}); err != nil {
		return err
	}
	var failed []error
	for _, e := range errs {
		if e != nil {
			failed = append(failed, e)
		}
	}
	return joinErrors(failed)
}
