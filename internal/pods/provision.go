package pods

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/podspec"
	"github.com/pinacle/pinacle-node/templates"
)

// Create implements Service.
func (m *Manager) Create(ctx context.Context, req api.CreateRequest) (*api.Pod, error) {
	spec, note, err := m.prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	spec = m.claimWarm(ctx, req, spec) // docs/warmpool.md
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	p, err := m.cfg.Store.CreatePod(ctx, store.Pod{ID: spec.ID, Name: spec.Name, Spec: b})
	if err != nil {
		m.unclaimWarm(ctx, spec.ID)
		if spec.GithubRepo != "" {
			m.discardPodDir(spec.ID)
		}
		return nil, err
	}
	if note != "" {
		m.event(ctx, p.ID, "repository", "Cloned", note)
	}
	done := m.background(p.ID, func(ctx context.Context) error { return m.provision(ctx, p.ID) })
	return m.maybeWait(ctx, p.ID, req.Wait, done)
}

// resolve merges the request onto its template and validates the result,
// as pod validate does (templates.ResolveRequest).
func (m *Manager) resolve(req api.CreateRequest) (*podspec.Pod, error) {
	return m.cfg.Templates.ResolveRequest(templates.Request{Spec: req.Spec, Template: req.Template, Sets: req.Sets}, newID)
}

// prepare resolves req; a spec naming a repository gets it cloned first,
// and, without a template, the template detected from the checkout.
func (m *Manager) prepare(ctx context.Context, req api.CreateRequest) (*podspec.Pod, string, error) {
	if req.Spec.GithubRepo == "" {
		spec, err := m.resolve(req)
		return spec, "", err
	}
	if req.Spec.ID == "" {
		req.Spec.ID = newID()
	}
	id := req.Spec.ID
	if err := errdefs.ValidateID("pod", id); err != nil {
		return nil, "", err
	}
	name := req.Spec.Name
	if name == "" {
		name = id
	}
	if _, err := m.cfg.Store.GetPodByName(ctx, name); err == nil {
		return nil, "", fmt.Errorf("pod name %s: %w", name, errdefs.ErrAlreadyExists)
	}
	if _, err := m.cfg.Store.GetPod(ctx, id); err == nil {
		return nil, "", fmt.Errorf("pod %s: %w", id, errdefs.ErrAlreadyExists)
	}
	// The repository and branch names are checked before anything runs.
	probe := podspec.Pod{GithubRepo: req.Spec.GithubRepo, GithubBranch: req.Spec.GithubBranch}
	if err := probe.Validate(); err != nil {
		var ve *podspec.ValidationError
		if errors.As(err, &ve) {
			for _, fe := range ve.Errors {
				if strings.HasPrefix(fe.Field, "github") {
					return nil, "", err
				}
			}
		}
	}
	if err := m.clone(ctx, id, &probe); err != nil {
		m.discardPodDir(id)
		return nil, "", err
	}
	note := "cloned " + req.Spec.GithubRepo
	if req.Spec.Template == "" && req.Template == "" {
		det, err := templates.Detect(ctx, m.cloneDir(id))
		if err != nil {
			m.discardPodDir(id)
			return nil, "", err
		}
		req.Template = det.Template
		note += fmt.Sprintf("; detected template %s: %s", det.Template, det.Reason)
	}
	spec, err := m.resolve(req)
	if err != nil {
		m.discardPodDir(id)
		return nil, "", err
	}
	return spec, note, nil
}

// discardPodDir removes the directory of a pod that was never recorded
// (its clone); the create's own error is what the client needs, so a
// failure here is only logged.
func (m *Manager) discardPodDir(id string) {
	if err := os.RemoveAll(m.podDir(id)); err != nil {
		m.log.Warn("removing the directory of an unrecorded pod", "pod", id, "err", err)
	}
}

// background runs op for pod id under the pod's lock and the manager's
// lifetime (a client going away does not abort a provisioning half way).
func (m *Manager) background(id string, op func(context.Context) error) <-chan error {
	done := make(chan error, 1)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		unlock := m.lock(id)
		defer unlock()
		done <- op(m.bg)
	}()
	return done
}

func (m *Manager) maybeWait(ctx context.Context, id string, wait bool, done <-chan error) (*api.Pod, error) {
	if wait {
		select {
		case err := <-done:
			if err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return m.Get(ctx, id)
}

// Start implements Service.
func (m *Manager) Start(ctx context.Context, idOrName string) (*api.Pod, error) {
	return m.runVerb(ctx, idOrName, m.start)
}

// runVerb runs op on the pod idOrName names in the background, under its
// lock, and returns the pod once op is done or the caller stops waiting.
func (m *Manager) runVerb(ctx context.Context, idOrName string, op func(context.Context, string) error) (*api.Pod, error) {
	p, err := m.find(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	done := m.background(p.ID, func(ctx context.Context) error { return op(ctx, p.ID) })
	return m.maybeWait(ctx, p.ID, true, done)
}

// provision brings a new (pending) pod up for the first time. Create is
// not a lifecycle operation on an existing pod (lifecycle.Decide does not
// take it): the pod was just recorded pending, so it simply moves on.
func (m *Manager) provision(ctx context.Context, id string) error {
	p, err := m.cfg.Store.Transition(ctx, id, lifecycle.Provisioning, "")
	if err != nil {
		return err
	}
	return m.bringUp(ctx, p)
}

// start enters starting (or does nothing, for a running pod) and brings
// the pod up; on failure it undoes what it did and leaves the pod failed.
func (m *Manager) start(ctx context.Context, id string) error {
	dec, p, err := m.cfg.Store.ApplyOp(ctx, id, lifecycle.OpStart, "")
	if err != nil {
		return err
	}
	switch dec.Action {
	case lifecycle.NoOp:
		return nil
	case lifecycle.Await:
		return fmt.Errorf("pod %s is %s: %w", id, p.State, errdefs.ErrConflict)
	}
	if dec.Enter == lifecycle.Waking {
		return m.wakeUp(ctx, p, wakeMode{}) // start of a hibernated pod wakes it
	}
	return m.bringUp(ctx, p)
}

// bringUp runs the pod's steps up to running. On failure the steps
// undo what they did and the pod is left failed with the reason, which
// names the step.
func (m *Manager) bringUp(ctx context.Context, p *store.Pod) error {
	crashpoint("up:recorded")
	spec, err := decodeSpec(p)
	if err != nil {
		return m.fail(ctx, p.ID, err)
	}
	st := m.statusOf(ctx, p)
	u, err := m.newUnit(p.ID, spec, &st)
	if err != nil {
		return m.fail(ctx, p.ID, err)
	}
	t := &timing{}
	err = m.upSeeded(ctx, u, t, func(step string, err error) {
		m.log.Warn("undo "+step, "pod", p.ID, "err", err)
	})
	if err == nil {
		err = m.recordRunning(ctx, u, t)
	}
	if err != nil {
		return m.fail(ctx, p.ID, err)
	}
	m.watch(p.ID)
	return nil
}

// recordRunning moves the pod to running in the same transaction as its
// runtime facts (IP, ports, image digest). On failure the steps are
// undone: a sandbox must not run for a pod not recorded running.
func (m *Manager) recordRunning(ctx context.Context, u *unit, t *timing) error {
	st := u.st
	if st.ImageDigest == "" {
		st.Image, st.ImageDigest = u.ref, u.img.Image.Digest
	}
	m.log.Info("pod up", append([]any{"pod", u.id}, t.kv...)...)
	_, err := m.cfg.Store.TransitionWith(ctx, u.id, lifecycle.Running, "", func(p *store.Pod) error {
		b, err := json.Marshal(st)
		p.Status = b
		return err
	})
	if err != nil {
		u.graceful = false
		if derr := podSteps.down(context.WithoutCancel(ctx), u); derr != nil {
			m.log.Warn("undo after recording running failed", "pod", u.id, "err", derr)
		}
	}
	return err
}

// fail records err as the pod's failure reason and returns err.
func (m *Manager) fail(ctx context.Context, id string, err error) error {
	if _, terr := m.cfg.Store.Transition(context.WithoutCancel(ctx), id, lifecycle.Failed, err.Error()); terr != nil {
		m.log.Warn("recording failure", "pod", id, "err", terr, "cause", err)
	}
	return fmt.Errorf("pod %s: %w", id, err)
}
