package templates

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/podspec"
)

// MarshalJSON writes a warning as {"path": ..., "error": ...}.
func (w Warning) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Path  string `json:"path"`
		Error string `json:"error"`
	}{w.Path, w.Err.Error()})
}

// checkName stands in for a pod's name when a template is validated on
// its own, since templates have none.
const checkName = "template-check"

// Resolve turns a user's pod spec into the complete spec the node runs:
// the spec's template (and what it extends) is the base, the spec is laid
// over it with podspec.Merge, each service named like a service
// definition gets the definition as its base, defaults are filled, and
// the result is validated in one pass. Errors are a
// *podspec.ValidationError naming every bad field. p is not modified.
func (r *Registry) Resolve(p *podspec.Pod) (*podspec.Pod, error) {
	base := &podspec.Pod{}
	if p.Template != "" {
		if _, ok := r.templates[p.Template]; !ok {
			return nil, &podspec.ValidationError{Errors: []podspec.FieldError{{
				Field:   "template",
				Message: fmt.Sprintf("unknown template %q (known: %s)", p.Template, strings.Join(r.Names(), ", ")),
			}}}
		}
		t, err := r.chain(p.Template)
		if err != nil {
			return nil, err
		}
		base = &t.Spec
	}
	out := podspec.Merge(base, p)
	r.expandServices(out)
	out.Default()
	if err := out.Validate(); err != nil {
		return nil, err
	}
	return out, nil
}

// Request is a pod as a client asks for it: a (partial) spec, a template
// that replaces the spec's, and --set expressions applied last.
type Request struct {
	Spec     podspec.Pod
	Template string
	Sets     []string
}

// ResolveRequest is the one way a request becomes the spec a node runs,
// shared by pod create (on the node) and pod validate (without one): the
// request's template replaces the spec's, the sets apply to the result,
// an empty ID becomes newID() and an empty name the ID, and Resolve does
// the rest. req.Spec is not modified.
func (r *Registry) ResolveRequest(req Request, newID func() string) (*podspec.Pod, error) {
	spec := req.Spec
	if req.Template != "" {
		spec.Template = req.Template
	}
	if len(req.Sets) > 0 {
		b, err := json.Marshal(spec)
		if err != nil {
			return nil, err
		}
		p, err := podspec.DecodeWithSets(b, req.Sets)
		if err != nil {
			return nil, err
		}
		spec = *p
	}
	if spec.ID == "" {
		spec.ID = newID()
	}
	if err := errdefs.ValidateID("pod", spec.ID); err != nil {
		return nil, err
	}
	if spec.Name == "" {
		spec.Name = spec.ID
	}
	return r.Resolve(&spec)
}

// placeholderID stands in for the ID a node would give a pod that names
// none, when a document is resolved without a node.
const placeholderID = "generated-by-the-node"

// ResolveDocument decodes a spec document (YAML or JSON, strictly) and
// resolves it exactly as a create of it would (ResolveRequest). The ID a
// node would generate is left empty, and so is a name that would be it.
func (r *Registry) ResolveDocument(data []byte, template string, sets []string) (*podspec.Pod, error) {
	spec, err := podspec.Decode(data)
	if err != nil {
		return nil, err
	}
	p, err := r.ResolveRequest(Request{Spec: *spec, Template: template, Sets: sets}, func() string { return placeholderID })
	if err != nil {
		return nil, err
	}
	if spec.ID == "" && p.ID == placeholderID {
		p.ID = ""
		if p.Name == placeholderID {
			p.Name = ""
		}
	}
	return p, nil
}

// ResolveTemplate returns the named template with what it extends merged
// in, its services expanded from their definitions and defaults filled:
// what a pod that only names the template gets (minus the pod's name).
func (r *Registry) ResolveTemplate(name string) (*Template, error) {
	t, err := r.chain(name)
	if err != nil {
		return nil, err
	}
	r.expandServices(&t.Spec)
	t.Spec.Default()
	check := t.Spec.DeepCopy()
	check.Name, check.Slug = checkName, checkName
	if err := check.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// chain merges a template onto what it extends. A user template that
// extends its own name extends the built-in it overrides.
func (r *Registry) chain(name string) (*Template, error) {
	var seen []string
	var specs []*podspec.Pod
	first, ok := r.templates[name]
	if !ok {
		return nil, fmt.Errorf("template %q (known: %s): %w", name, strings.Join(r.Names(), ", "), errdefs.ErrNotFound)
	}
	for t := first; t != nil; {
		key := string(t.Source) + ":" + t.Name
		if slices.Contains(seen, key) {
			return nil, invalid("extends", "cycle: %s", cyclePath(seen, key))
		}
		seen = append(seen, key)
		specs = append(specs, &t.Spec)
		if t.Extends == "" {
			break
		}
		var next *Template
		if t.Extends == t.Name && t.Source == SourceUser {
			next = r.builtin[t.Name]
		} else {
			next = r.templates[t.Extends]
		}
		if next == nil {
			return nil, invalid("extends", "template %q extends unknown template %q", t.Name, t.Extends)
		}
		t = next
	}
	spec := &podspec.Pod{}
	for i := len(specs) - 1; i >= 0; i-- {
		spec = podspec.Merge(spec, specs[i])
	}
	desc := ""
	for _, key := range seen {
		src, n, _ := strings.Cut(key, ":")
		t := r.templates[n]
		if Source(src) == SourceBuiltin {
			t = r.builtin[n]
		}
		if t != nil && t.Description != "" {
			desc = t.Description
			break
		}
	}
	return &Template{Name: first.Name, Description: desc, Extends: first.Extends, Source: first.Source, Path: first.Path, Spec: *spec}, nil
}

func cyclePath(seen []string, again string) string {
	var names []string
	for _, k := range append(seen[slices.Index(seen, again):], again) {
		src, n, _ := strings.Cut(k, ":")
		if Source(src) == SourceBuiltin {
			n += " (builtin)"
		}
		names = append(names, n)
	}
	return strings.Join(names, " -> ")
}

// expandServices lays each service over the definition of the same name.
func (r *Registry) expandServices(p *podspec.Pod) {
	for i, s := range p.Services {
		if d, ok := r.services[s.Name]; ok {
			p.Services[i] = podspec.MergeService(d.svc, s)
		}
	}
}

func invalid(field, format string, args ...any) error {
	return &podspec.ValidationError{Errors: []podspec.FieldError{{Field: field, Message: fmt.Sprintf(format, args...)}}}
}
