package templates

import (
	"fmt"

	"github.com/pinacle/pinacle-node/podspec"
)

// Source says where a template or service definition came from.
type Source string

const (
	SourceBuiltin Source = "builtin"
	SourceUser    Source = "user"
)

// Template is a named, partial pod spec that pods start from. Its Spec
// names a base image, services, ports, environment, a default tier and a
// working directory; Extends names a template it builds on.
type Template struct {
	Name        string      `json:"name"`
	Description string      `json:"description,omitempty"`
	Extends     string      `json:"extends,omitempty"`
	Source      Source      `json:"source"`
	Path        string      `json:"path,omitempty"` // the file a user template came from
	Spec        podspec.Pod `json:"spec"`
}

// templateFile is what a template file may contain.
type templateFile struct {
	Name        string      `json:"name"`
	Description string      `json:"description,omitempty"`
	Extends     string      `json:"extends,omitempty"`
	Spec        podspec.Pod `json:"spec"`
}

// parseTemplate decodes a template file strictly. fallbackName names a
// template whose file gives none.
func parseTemplate(data []byte, fallbackName string, src Source, path string) (*Template, error) {
	var f templateFile
	if err := podspec.DecodeStrict(data, &f); err != nil {
		return nil, err
	}
	if f.Name == "" {
		f.Name = fallbackName
	}
	var errs []podspec.FieldError
	if !isDNSLabel(f.Name) {
		errs = append(errs, podspec.FieldError{Field: "name", Message: fmt.Sprintf("%q must be a DNS label", f.Name)})
	}
	if f.Extends != "" && !isDNSLabel(f.Extends) {
		errs = append(errs, podspec.FieldError{Field: "extends", Message: fmt.Sprintf("%q must be a DNS label", f.Extends)})
	}
	// A template describes a kind of pod, never one pod.
	for field, v := range map[string]string{"spec.id": f.Spec.ID, "spec.name": f.Spec.Name, "spec.slug": f.Spec.Slug, "spec.template": f.Spec.Template} {
		if v != "" {
			errs = append(errs, podspec.FieldError{Field: field, Message: "not allowed in a template"})
		}
	}
	if len(errs) > 0 {
		sortFieldErrors(errs)
		return nil, &podspec.ValidationError{Errors: errs}
	}
	return &Template{Name: f.Name, Description: f.Description, Extends: f.Extends, Source: src, Path: path, Spec: f.Spec}, nil
}

// parseService decodes a service definition file strictly.
func parseService(data []byte, fallbackName string) (podspec.Service, error) {
	var s podspec.Service
	if err := podspec.DecodeStrict(data, &s); err != nil {
		return s, err
	}
	if s.Name == "" {
		s.Name = fallbackName
	}
	if !isDNSLabel(s.Name) {
		return s, &podspec.ValidationError{Errors: []podspec.FieldError{{Field: "name", Message: fmt.Sprintf("%q must be a DNS label", s.Name)}}}
	}
	return s, nil
}
