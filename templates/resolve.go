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
