package templates

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/podspec"
)

//go:embed builtin/*.yaml services/*.yaml
var embedded embed.FS

// DefaultDir is where the node looks for users' templates.
const DefaultDir = "/etc/pinacle/templates"

// Registry is the set of templates and service definitions pods resolve
// against: the built-in ones, overridden by name by users' own. It is
// immutable after Load and safe for concurrent use.
type Registry struct {
	builtin   map[string]*Template
	templates map[string]*Template // effective: user over builtin
	services  map[string]serviceDef
}

type serviceDef struct {
	svc    podspec.Service
	source Source
}

// Warning is a problem with one user file; the file is skipped (or the
// built-in of the same name kept) and everything else still loads.
type Warning struct {
	Path string `json:"path"`
	Err  error  `json:"-"`
}

func (w Warning) Error() string { return w.Path + ": " + w.Err.Error() }

// Option configures Load.
type Option func(*options) error

type options struct {
	dir    string
	logger *slog.Logger
}

// WithDir loads users' templates from dir: *.yaml, *.yml and *.json
// files, one template each, and service definitions from dir/services/.
// A directory that does not exist holds no templates.
func WithDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return fmt.Errorf("templates dir: empty path: %w", errdefs.ErrInvalidArgument)
		}
		o.dir = dir
		return nil
	}
}

// WithLogger logs what Load does; silent by default.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("nil logger: %w", errdefs.ErrInvalidArgument)
		}
		o.logger = l
		return nil
	}
}

// Load builds a registry from the built-in templates and, WithDir, the
// user's. A broken user template or service definition does not fail
// Load: it is left out and reported as a Warning. The error is for bad
// options, an unreadable directory, or broken built-ins.
func Load(ctx context.Context, opts ...Option) (*Registry, []Warning, error) {
	o := options{logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, nil, err
		}
	}
	r := &Registry{builtin: map[string]*Template{}, templates: map[string]*Template{}, services: map[string]serviceDef{}}
	if err := r.loadBuiltin(); err != nil {
		return nil, nil, fmt.Errorf("built-in templates: %w", err)
	}
	var warns []Warning
	if o.dir != "" {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		w, err := r.loadUser(o.dir)
		if err != nil {
			return nil, nil, err
		}
		warns = append(warns, w...)
	}
	warns = append(warns, r.check()...)
	for _, w := range warns {
		o.logger.Warn("template skipped", "path", w.Path, "error", w.Err)
	}
	o.logger.Debug("templates loaded", "templates", len(r.templates), "services", len(r.services))
	return r, warns, nil
}

// Builtin returns a registry of the built-in templates only.
func Builtin() *Registry {
	r, _, err := Load(context.Background())
	if err != nil {
		panic(err) // the embedded files are tested; this is a build bug
	}
	return r
}

func (r *Registry) loadBuiltin() error {
	svcs, _ := fs.Glob(embedded, "services/*.yaml")
	for _, p := range svcs {
		b, _ := embedded.ReadFile(p)
		s, err := parseService(b, baseName(p))
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		r.services[s.Name] = serviceDef{s, SourceBuiltin}
	}
	tmpls, _ := fs.Glob(embedded, "builtin/*.yaml")
	for _, p := range tmpls {
		b, _ := embedded.ReadFile(p)
		t, err := parseTemplate(b, baseName(p), SourceBuiltin, "")
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		r.builtin[t.Name] = t
		r.templates[t.Name] = t
	}
	return nil
}

func (r *Registry) loadUser(dir string) ([]Warning, error) {
	var warns []Warning
	read := func(sub string, each func(path string, data []byte) error) error {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("templates dir: %w", err)
		}
		for _, e := range entries { // ReadDir sorts by name: deterministic
			ext := filepath.Ext(e.Name())
			if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
				continue
			}
			p := filepath.Join(dir, sub, e.Name())
			data, err := os.ReadFile(p)
			if err == nil {
				err = each(p, data)
			}
			if err != nil {
				warns = append(warns, Warning{Path: p, Err: err})
			}
		}
		return nil
	}
	err := read("services", func(p string, data []byte) error {
		s, err := parseService(data, baseName(p))
		if err != nil {
			return err
		}
		if d, dup := r.services[s.Name]; dup && d.source == SourceUser {
			return fmt.Errorf("service %q is defined twice: %w", s.Name, errdefs.ErrAlreadyExists)
		}
		r.services[s.Name] = serviceDef{s, SourceUser}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = read("", func(p string, data []byte) error {
		t, err := parseTemplate(data, baseName(p), SourceUser, p)
		if err != nil {
			return err
		}
		if old, dup := r.templates[t.Name]; dup && old.Source == SourceUser {
			return fmt.Errorf("template %q is also defined in %s: %w", t.Name, old.Path, errdefs.ErrAlreadyExists)
		}
		r.templates[t.Name] = t
		return nil
	})
	return warns, err
}

// check resolves every user template and drops the broken ones (keeping
// the built-in of the same name, if any), until all that remain resolve:
// dropping one may break another that extends it.
func (r *Registry) check() []Warning {
	var warns []Warning
	for {
		// Judge the whole round before dropping any, so that every member
		// of a cycle is reported as such.
		var broken []string
		for _, name := range r.Names() {
			t := r.templates[name]
			if t.Source != SourceUser {
				continue
			}
			if _, err := r.ResolveTemplate(name); err != nil {
				warns = append(warns, Warning{Path: t.Path, Err: fmt.Errorf("template %q: %w", name, err)})
				broken = append(broken, name)
			}
		}
		if len(broken) == 0 {
			return warns
		}
		for _, name := range broken {
			if b, ok := r.builtin[name]; ok {
				r.templates[name] = b
			} else {
				delete(r.templates, name)
			}
		}
	}
}

// Names returns the template names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.templates))
	for n := range r.templates {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Get returns a copy of the named template as written (not resolved).
func (r *Registry) Get(name string) (*Template, error) {
	t, ok := r.templates[name]
	if !ok {
		return nil, fmt.Errorf("template %q (known: %s): %w", name, strings.Join(r.Names(), ", "), errdefs.ErrNotFound)
	}
	c := *t
	c.Spec = *t.Spec.DeepCopy()
	return &c, nil
}

// Service returns a copy of the named service definition.
func (r *Registry) Service(name string) (podspec.Service, Source, bool) {
	d, ok := r.services[name]
	return d.svc.DeepCopy(), d.source, ok
}

// ServiceNames returns the service definition names, sorted.
func (r *Registry) ServiceNames() []string {
	names := make([]string, 0, len(r.services))
	for n := range r.services {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func baseName(p string) string {
	b := filepath.Base(p)
	return strings.TrimSuffix(b, filepath.Ext(b))
}

func isDNSLabel(s string) bool { return podspec.IsDNSLabel(s) }

func sortFieldErrors(errs []podspec.FieldError) {
	slices.SortFunc(errs, func(a, b podspec.FieldError) int { return cmp.Compare(a.Field, b.Field) })
}
