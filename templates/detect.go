package templates

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Detection is the template a checkout looks like it wants, and why.
type Detection struct {
	Template string `json:"template"`
	Reason   string `json:"reason"`
}

// maxManifest bounds how much of a manifest Detect reads.
const maxManifest = 4 << 20

// Detect inspects a checkout and names the template that fits it:
// @mastra/* in package.json -> mastra; next -> nextjs; express or fastify
// -> nodejs; jupyter, pandas or numpy in requirements.txt or
// pyproject.toml -> datascience; otherwise custom. Mastra comes before
// Next.js because Mastra projects often carry a Next.js front end. An
// unreadable or malformed manifest is skipped, never fatal: the checkout
// still gets a template, and the reason says what was skipped.
func Detect(ctx context.Context, dir string) (Detection, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Detection{}, fmt.Errorf("detect %s: %w", dir, errdefs.ErrNotFound)
		}
		return Detection{}, fmt.Errorf("detect: %w", err)
	}
	if !fi.IsDir() {
		return Detection{}, fmt.Errorf("detect %s: not a directory: %w", dir, errdefs.ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return Detection{}, err
	}
	var notes []string
	if deps, err := packageJSONDeps(filepath.Join(dir, "package.json")); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			notes = append(notes, "package.json skipped: "+err.Error())
		}
	} else {
		for _, d := range deps {
			if strings.HasPrefix(d, "@mastra/") || d == "mastra" {
				return Detection{"mastra", fmt.Sprintf("package.json depends on %s", d)}, nil
			}
		}
		for _, rule := range []struct{ dep, tmpl string }{{"next", "nextjs"}, {"express", "nodejs"}, {"fastify", "nodejs"}} {
			if slices.Contains(deps, rule.dep) {
				return Detection{rule.tmpl, fmt.Sprintf("package.json depends on %s", rule.dep)}, nil
			}
		}
	}
	dataLibs := []string{"jupyter", "jupyterlab", "notebook", "pandas", "numpy"}
	for _, f := range []string{"requirements.txt", "pyproject.toml"} {
		var pkgs []string
		var err error
		if f == "requirements.txt" {
			pkgs, err = requirementsTxt(filepath.Join(dir, f))
		} else {
			pkgs, err = pyprojectDeps(filepath.Join(dir, f))
		}
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				notes = append(notes, f+" skipped: "+err.Error())
			}
			continue
		}
		for _, p := range pkgs {
			if slices.Contains(dataLibs, p) {
				return Detection{"datascience", fmt.Sprintf("%s lists %s", f, p)}, nil
			}
		}
	}
	reason := "no known framework in package.json, requirements.txt or pyproject.toml"
	if len(notes) > 0 {
		reason += " (" + strings.Join(notes, "; ") + ")"
	}
	return Detection{"custom", reason}, nil
}

func readManifest(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file")
	}
	if fi.Size() > maxManifest {
		return nil, fmt.Errorf("larger than %d bytes", maxManifest)
	}
	var b bytes.Buffer
	_, err = b.ReadFrom(f)
	return b.Bytes(), err
}

// packageJSONDeps returns the names in dependencies, devDependencies and
// peerDependencies, sorted.
func packageJSONDeps(path string) ([]string, error) {
	b, err := readManifest(path)
	if err != nil {
		return nil, err
	}
	var pj struct {
		Dependencies    map[string]any `json:"dependencies"`
		DevDependencies map[string]any `json:"devDependencies"`
		PeerDeps        map[string]any `json:"peerDependencies"`
	}
	if err := json.Unmarshal(b, &pj); err != nil {
		return nil, fmt.Errorf("invalid JSON")
	}
	var deps []string
	for _, m := range []map[string]any{pj.Dependencies, pj.DevDependencies, pj.PeerDeps} {
		for k := range m {
			deps = append(deps, k)
		}
	}
	slices.Sort(deps)
	return slices.Compact(deps), nil
}

// pyName matches the distribution name at the start of a PEP 508
// requirement, e.g. "pandas" in "pandas[excel]>=2.0; python_version>'3.8'".
var pyName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\s*([A-Za-z0-9][A-Za-z0-9._-]*)`) })

func normalizePy(n string) string {
	return strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(n))
}

func requirementsTxt(path string) ([]string, error) {
	b, err := readManifest(path)
	if err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), maxManifest)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if strings.HasPrefix(strings.TrimSpace(line), "-") {
			continue // -r, -e, --index-url ...
		}
		if m := pyName().FindStringSubmatch(line); m != nil {
			out = append(out, normalizePy(m[1]))
		}
	}
	return out, sc.Err()
}

var (
	tomlTable  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\s*\[+\s*([^\]]+?)\s*\]+\s*$`) })
	tomlString = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`"([^"]*)"|'([^']*)'`) })
	tomlKey    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\s*"?([A-Za-z0-9][A-Za-z0-9._-]*)"?\s*=`) })
)

// pyprojectDeps finds dependency names in a pyproject.toml without a
// full TOML parser: strings in [project] dependencies (and
// optional-dependencies) arrays, and keys of Poetry dependency tables.
func pyprojectDeps(path string) ([]string, error) {
	b, err := readManifest(path)
	if err != nil {
		return nil, err
	}
	var out []string
	table := ""
	inArray := false
	for line := range strings.SplitSeq(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		if m := tomlTable().FindStringSubmatch(line); m != nil && !inArray {
			table = m[1]
			continue
		}
		switch {
		case table == "project" || table == "project.optional-dependencies" || strings.HasPrefix(table, "dependency-groups"):
			trimmed := strings.TrimSpace(line)
			if !inArray {
				k, rest, ok := strings.Cut(trimmed, "=")
				if !ok || (table == "project" && strings.TrimSpace(k) != "dependencies") {
					continue
				}
				trimmed = strings.TrimSpace(rest)
				if !strings.HasPrefix(trimmed, "[") {
					continue
				}
				inArray = true
			}
			for _, s := range tomlString().FindAllStringSubmatch(trimmed, -1) {
				if m := pyName().FindStringSubmatch(s[1] + s[2]); m != nil {
					out = append(out, normalizePy(m[1]))
				}
			}
			if strings.Contains(trimmed, "]") && !strings.Contains(trimmed[strings.LastIndex(trimmed, "]"):], "\"") {
				inArray = false
			}
		case strings.HasPrefix(table, "tool.poetry") && strings.HasSuffix(table, "dependencies"):
			if m := tomlKey().FindStringSubmatch(line); m != nil {
				out = append(out, normalizePy(m[1]))
			}
		}
	}
	return out, nil
}
